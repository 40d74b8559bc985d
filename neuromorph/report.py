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
    """One row of EPOCH_HEADERS; a field missing from the record, or not a number, shows as ``-`` (a record from
    an older or a foreign file is shown, not refused)."""

    def number(key: str) -> Any:
        value = record.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else "-"

    def percent(key: str) -> str:
        value = number(key)
        return "-" if value == "-" else f"{100 * value:.2f}%"

    rates = record.get("spike_rate")
    rates = " ".join(f"{v:.3f}" if isinstance(v, int | float) else "-" for v in rates.values()) \
        if isinstance(rates, dict) else ""
    seconds = number("train_seconds")
    return [
        number("epoch"), number("lam"), number("train_loss"), number("train_penalty"),
        percent("train_accuracy"), percent("test_accuracy"), number("synops_per_sample"), rates or "-",
        seconds if seconds == "-" else f"{seconds:.1f}",
    ]
