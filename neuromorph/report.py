"""Terminal tables and number formatting, shared by the CLI and the examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.{digits - 1}e}"
        if abs(value) < 1:
            return f"{value:.{digits}g}"
        decimals = 3 if abs(value) < 10 else 2 if abs(value) < 1000 else 1
        return f"{value:,.{decimals}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[format_number(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))

    out = [title] if title else []
    out.append(line([str(h) for h in headers]))
    out.append("  ".join("-" * w for w in widths))
    out += [line(r) for r in cells]
    return "\n".join(out)


EPOCH_HEADERS = ("epoch", "lambda", "loss", "penalty", "train acc", "test acc", "SynOps/sample", "rates", "s")


def epoch_row(record: dict[str, Any]) -> list[Any]:
    rates = " ".join(f"{v:.3f}" for v in record["spike_rate"].values())
    return [
        record["epoch"], record["lam"], record["train_loss"], record["train_penalty"],
        f"{100 * record['train_accuracy']:.2f}%", f"{100 * record['test_accuracy']:.2f}%",
        record["synops_per_sample"], rates or "-", f"{record['train_seconds']:.1f}",
    ]
