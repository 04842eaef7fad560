"""ruff (pyproject.toml [tool.ruff]) finds nothing in the package, tests, launch files and scripts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Folders: ruff checks the Python files in them (*.py), with pyproject's excludes.
PATHS = ["aaron_ros", "test", "launch", "scripts", "setup.py"]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is not installed (requirements.txt pins it)")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                          *PATHS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"ruff check {' '.join(PATHS)}:\n{out.stdout}{out.stderr}"
