"""Tables of the backtest report: the configs side by side, every cell that differs from the
first config's marked with the difference. Numbers are shown from exact values (integer fen,
ratios of integers), and every string is escaped: ids come from user data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from html import escape
from typing import Literal

from shopstream.backtest_svg import clock

Kind = Literal["int", "fen", "pct", "text", "time"]
Value = int | Fraction | str | None


def yuan(fen: int) -> str:
    """Integer fen as yuan with two decimals and thousands separators, exactly (no float)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}¥{whole:,}.{cents:02d}"


def show(value: Value, kind: Kind) -> str:
    """A value as the report writes it; None as an em dash."""
    if value is None:
        return "—"
    if kind == "fen" and isinstance(value, int):
        return yuan(value)
    if kind == "pct" and isinstance(value, Fraction):
        return f"{float(value * 100):.1f}%"
    if kind == "time" and isinstance(value, int):
        return clock(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def delta(value: Value, base: Value, kind: Kind) -> str:
    """How ``value`` differs from the first config's ``base``."""
    if isinstance(value, int) and isinstance(base, int) and kind in ("int", "fen"):
        diff = value - base
        return ("+" if diff > 0 else "") + (yuan(diff) if kind == "fen" else f"{diff:,}")
    if isinstance(value, Fraction) and isinstance(base, Fraction):
        return f"{float((value - base) * 100):+.1f} pp"
    return f"was {show(base, kind)}"


@dataclass(frozen=True, slots=True)
class Metric:
    """A column group: one sub-column per config."""

    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Row:
    """Key cells, then per metric one value per config."""

    keys: tuple[str, ...]
    values: tuple[tuple[Value, ...], ...]


def ratio(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den else None


def table(table_id: str, key_heads: Sequence[str], metrics: Sequence[Metric],
          labels: Sequence[str], rows: Sequence[Row]) -> str:
    """One HTML table; with several configs each metric has a column per config and a cell
    unlike the first config's carries class ``diff`` and the difference."""
    several = len(labels) > 1
    head = "".join(f'<th{" rowspan=2" if several else ""}>{escape(k)}</th>' for k in key_heads)
    if several:
        head += "".join(f'<th colspan="{len(labels)}" class="group">{escape(m.name)}</th>'
                        for m in metrics)
        sub = "".join(f"<th>{escape(lab)}</th>" for _ in metrics for lab in labels)
        thead = f"<tr>{head}</tr><tr>{sub}</tr>"
    else:
        thead = "<tr>" + head + "".join(f"<th>{escape(m.name)}</th>" for m in metrics) + "</tr>"
    body = []
    for row in rows:
        key = "|".join(row.keys)
        cells = "".join(f"<th scope=row>{escape(k)}</th>" for k in row.keys)
        for metric, values in zip(metrics, row.values, strict=True):
            for i, v in enumerate(values):
                text = escape(show(v, metric.kind))
                attrs = (f'data-key="{escape(key)}" data-metric="{escape(metric.name)}"'
                         f' data-config="{i}"')
                if i and v != values[0]:
                    d = escape(delta(v, values[0], metric.kind))
                    cells += (f'<td class="num diff" {attrs} title="vs {escape(labels[0])}: {d}">'
                              f'{text}<span class="delta">{d}</span></td>')
                else:
                    cells += f'<td class="num" {attrs}>{text}</td>'
        body.append(f"<tr>{cells}</tr>")
    if not rows:
        span = len(key_heads) + len(metrics) * len(labels)
        body.append(f'<tr><td colspan="{span}" class="empty">none</td></tr>')
    return (f'<table id="{escape(table_id)}"><thead>{thead}</thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def union(keys_per_config: Sequence[Sequence[str]]) -> list[str]:
    """Every key of any config, in order of first appearance (the first config's first)."""
    return list(dict.fromkeys(k for keys in keys_per_config for k in keys))
