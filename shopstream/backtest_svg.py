"""Line charts as inline SVG for the backtest report: drawn here, so the page needs no script,
font or network to show them (it opens from disk)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Final
from zoneinfo import ZoneInfo

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 64, 14, 34
#: One colour per config, in the report's order (repeats past the sixth).
COLOURS: Final = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")


@dataclass(frozen=True, slots=True)
class Series:
    """One line: (epoch ms, value) points in time order, drawn against the left axis or, with
    ``right``, against an axis of its own on the right."""

    name: str
    points: list[tuple[int, int]]
    colour: str
    fmt: Callable[[int], str]
    right: bool = False
    dashed: bool = False


def clock(ms: int) -> str:
    """Epoch ms as Shanghai time, ``YYYY-MM-DD HH:MM``."""
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _scale(lo: int, hi: int, a: float, b: float) -> Callable[[int], float]:
    if hi == lo:
        return lambda v: (a + b) / 2
    return lambda v: a + (v - lo) * (b - a) / (hi - lo)


@dataclass(frozen=True, slots=True)
class Limit:
    """A dashed level across the chart on the left axis (a budget)."""

    name: str
    value: int
    colour: str


def line_chart(chart_id: str, title: str, series: list[Series],
               limits: Sequence[Limit] = ()) -> str:
    """An SVG chart: one polyline and one circle per point per series (its value in the
    circle's title), time along the bottom, value axes from 0 to each side's largest value
    (limits included)."""
    times = [t for s in series for t, _ in s.points]
    if not times:
        return f'<p class="empty" data-chart="{escape(chart_id)}">{escape(title)}: no data</p>'
    x = _scale(min(times), max(times), LEFT, WIDTH - RIGHT)
    parts = [f'<svg class="chart" data-chart="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}"'
             f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}"'
             f' y2="{HEIGHT - BOTTOM}"/>']
    for right in (False, True):
        side = [s for s in series if s.right == right]
        if not side:
            continue
        levels = [] if right else list(limits)
        top = max([v for s in side for _, v in s.points] + [lim.value for lim in levels] + [0])
        y = _scale(0, top or 1, HEIGHT - BOTTOM, TOP)
        ax = WIDTH - RIGHT if right else LEFT
        anchor, dx = ("start", 4) if right else ("end", -4)
        parts.append(f'<line class="axis" x1="{ax}" y1="{TOP}" x2="{ax}" y2="{HEIGHT - BOTTOM}"/>')
        for v in (0, top):
            parts.append(f'<text class="tick" x="{ax + dx}" y="{y(v) + 4:.1f}"'
                         f' text-anchor="{anchor}">{escape(side[0].fmt(v))}</text>')
        for lim in levels:
            parts.append(f'<line class="limit" data-limit="{escape(lim.name)}" x1="{LEFT}"'
                         f' y1="{y(lim.value):.1f}" x2="{WIDTH - RIGHT}" y2="{y(lim.value):.1f}"'
                         f' stroke="{lim.colour}" stroke-dasharray="2 3"><title>'
                         f"{escape(lim.name)}: {escape(side[0].fmt(lim.value))}</title></line>")
        for s in side:
            pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
            dash = ' stroke-dasharray="5 4"' if s.dashed else ""
            parts.append(f'<polyline class="line" data-series="{escape(s.name)}" fill="none"'
                         f' stroke="{s.colour}"{dash} points="{pts}"/>')
            parts += [f'<circle class="pt" data-series="{escape(s.name)}" cx="{x(t):.1f}"'
                      f' cy="{y(v):.1f}" r="2.5" fill="{s.colour}"><title>'
                      f"{escape(s.name)} {escape(clock(t))}: {escape(s.fmt(v))}</title></circle>"
                      for t, v in s.points]
    for t, anchor in ((min(times), "start"), (max(times), "end")):
        parts.append(f'<text class="tick" x="{x(t):.1f}" y="{HEIGHT - 10}"'
                     f' text-anchor="{anchor}">{escape(clock(t))}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{s.colour}"></i>'
                     f"{escape(s.name)}{' (right axis)' if s.right else ''}</span>"
                     for s in series)
    return (f'<figure class="fig"><figcaption>{escape(title)}</figcaption>{"".join(parts)}'
            f'<div class="legend">{legend}</div></figure>')
