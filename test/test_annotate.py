"""Readable results: labels files, masks at the image's size, and the result drawn on the image."""
from __future__ import annotations

import numpy as np
import pytest

from aaron_ros.ros.annotate import annotate, names_of, read_labels, resize_mask


def test_labels_name_ids_and_bad_files_say_what_is_wrong(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("person\n bicycle \ncar\n\n\n")
    labels = read_labels(path)
    assert labels == ["person", "bicycle", "car"]
    assert names_of([2, 0, 7, -1], labels) == ["car", "person", "", ""]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt names no class"):
        read_labels(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="nowhere.txt: cannot be read"):
        read_labels(tmp_path / "nowhere.txt")


def test_a_mask_grows_to_the_image_keeping_its_ids():
    mask = np.array([[0, 1], [2, 3]], np.uint8)
    big = resize_mask(mask, (4, 6))
    assert big.shape == (4, 6) and set(np.unique(big)) == {0, 1, 2, 3}
    assert (big[:2, :3] == 0).all() and (big[2:, 3:] == 3).all()
    assert resize_mask(mask, (2, 2)) is mask


def test_annotations_draw_boxes_a_mask_or_the_top_class():
    image = np.full((120, 160, 3), 100, np.uint8)
    boxed = annotate(image, [1], [0.9], [20.0, 30.0, 80.0, 90.0], labels=["a", "b"])
    changed = np.argwhere((boxed != image).any(axis=2))
    assert changed.size and changed[:, 0].max() <= 91 and changed[:, 1].max() <= 81  # on and around the box
    assert (image == 100).all()  # a copy: the frame itself is untouched
    mask = np.zeros((120, 160), np.uint8)
    mask[:, 80:] = 5
    overlay = annotate(image, [], [], mask=mask)
    assert not np.array_equal(overlay[:, 80:], image[:, 80:]) and len({overlay[0, 0].tobytes(),
                                                                    overlay[0, 100].tobytes()}) == 2
    top = annotate(image, [4], [0.5])
    assert not np.array_equal(top[:40], image[:40]) and np.array_equal(top[60:], image[60:])
