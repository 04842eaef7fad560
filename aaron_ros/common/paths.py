"""Where the package's own files are, from a source checkout or an install."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = "aaron_ros"


def share_dirs() -> list[Path]:
    """Candidate roots holding config/ and launch/: the checkout, then install prefixes."""
    dirs = [Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / PACKAGE]
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # no ament index set up (wheels venv without AMENT_PREFIX_PATH)
        pass
    return dirs


def find_config(name: str) -> Path:
    """A file given by path, or by name in the package's config/ folder."""
    path = Path(name)
    if path.is_file():
        return path
    for root in share_dirs():
        for candidate in (root / "config" / name, root / "config" / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"config '{name}' not found as a file nor in config/ of "
                            f"{[str(d) for d in share_dirs()]}")


# Where kernel bags live unless told otherwise: one folder per model. "kernel" tells them apart from
# rosbags (camera recordings) at first sight; `bags/`, the old name, is still read for one release.
KERNEL_BAG_DIR = "kernel_bags"
OLD_KERNEL_BAG_DIR = "bags"


def kernel_bag_root(path: str | os.PathLike = KERNEL_BAG_DIR) -> Path:
    """The folder of kernel bags to read: `path`, or for the default name when it does not exist
    but the old `bags/` does, that one, with a deprecation warning."""
    p = Path(path)
    if p == Path(KERNEL_BAG_DIR) and not p.exists() and Path(OLD_KERNEL_BAG_DIR).is_dir():
        log.warning("reading kernel bags from %s/, the old default folder; rename it to %s/ "
                    "(the old name is read until the next release)", OLD_KERNEL_BAG_DIR, KERNEL_BAG_DIR)
        return Path(OLD_KERNEL_BAG_DIR)
    return p
