"""Benchmark evidence on disk: a JSON for machines and a markdown table for people, side by side."""
from __future__ import annotations

import json
from pathlib import Path


def text_table(head, rows, left: int = 1) -> str:
    """A plain-text table for the terminal: a header, a rule, the rows. The first `left`
    columns are left-aligned (names), the rest right-aligned (numbers)."""
    rows = [[str(c) for c in r] for r in rows]
    head = [str(c) for c in head]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def write_report(out_dir: str | Path, stem: str, data: dict, table: str) -> Path:
    """Write `<stem>.json` and `<stem>.md` into `out_dir`; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{stem}.md").write_text(f"```\n{table}\n```\n")
    return out
