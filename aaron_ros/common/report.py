"""Benchmark evidence on disk: a JSON for machines and a markdown table for people, side by side."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
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


def fmt(value: object, digits: int = 1) -> str:
    """A number for a table cell: fixed digits for floats, "-" for None, NaN and infinities."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pct(value: object) -> str:
    """A fraction as a percentage cell ("-" for None and NaN)."""
    return "-" if value is None or not math.isfinite(float(value)) else f"{100 * float(value):.1f}%"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, columns padded to their widest cell."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])


def write_report(out_dir: str | Path, stem: str, data: dict, table: str) -> Path:
    """Write `<stem>.json` and `<stem>.md` into `out_dir`; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{stem}.md").write_text(f"```\n{table}\n```\n")
    return out
