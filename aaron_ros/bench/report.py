"""Benchmark evidence on disk: a JSON for machines and a markdown table for people, side by side."""
from __future__ import annotations

import json
from pathlib import Path


def write_report(out_dir: str | Path, stem: str, data: dict, table: str) -> Path:
    """Write `<stem>.json` and `<stem>.md` into `out_dir`; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{stem}.md").write_text(f"```\n{table}\n```\n")
    return out
