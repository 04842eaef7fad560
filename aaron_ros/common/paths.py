"""Where the package's own files are, from a source checkout or an install."""
from __future__ import annotations

import sys
from pathlib import Path

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
