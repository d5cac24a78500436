"""Anomalies, pure: a minute against a robust baseline of the minutes before it, in episodes.

Why median and MAD: a promotion's minutes are spiky (flash sales at the hour, live-room
bursts); a mean and standard deviation would be dragged by the spikes they should judge,
while the median and the median absolute deviation ignore up to half the window. The judged
direction is a drop (what pages someone: orders, paid GMV, payment success, a funnel step).

A minute is anomalous when its value is at least ``threshold`` robust deviations below the
median of the previous ``window`` minutes AND at least ``min_drop`` below it relatively (so a
flat, noiseless baseline does not flag a 1% dip). Too little to judge: fewer than
``min_history`` minutes in the window, a median volume (orders; successful payments for GMV)
below ``min_volume``, or a ratio whose denominator is below ``min_volume`` (such minutes neither
open nor close an episode). An episode opens at the first anomalous minute of a metric and
closes at its next normal one; one alert per episode.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec

from shopstream.core.errors import ConfigError
from shopstream.core.sections import read_section
from shopstream.core.timeunits import MINUTE_MS

#: MAD times this estimates a standard deviation for normally distributed noise.
MAD_SCALE: Final = 1.4826


class AnomalyConfig(msgspec.Struct, frozen=True):
    """``[anomalies]`` of the config file."""

    threshold: Annotated[float, msgspec.Meta(ge=1.0, le=100.0)] = 5.0
    min_drop: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.3
    window: Annotated[int, msgspec.Meta(ge=5, le=1440)] = 60
    min_history: Annotated[int, msgspec.Meta(ge=3, le=1440)] = 30
    min_volume: Annotated[int, msgspec.Meta(ge=1, le=10**9)] = 20


def parse_config(sections: Mapping[str, Any]) -> AnomalyConfig:
    """Validate ``[anomalies]``; raises ConfigError naming the key."""
    cfg = read_section(sections, "anomalies", AnomalyConfig)
    if cfg.min_history > cfg.window:
        raise ConfigError("anomalies.min_history: expected <= anomalies.window")
    return cfg


@dataclass(frozen=True, slots=True)
class Point:
    """One minute of one metric: its value and the volume behind it (the count itself, or a
    ratio's denominator)."""

    value: float
    volume: int


@dataclass(frozen=True, slots=True)
class Verdict:
    anomalous: bool
    baseline: float
    mad: float
    score: float


def judge(point: Point, history: list[Point], cfg: AnomalyConfig, ratio: bool) -> Verdict | None:
    """The verdict on ``point`` given the window before it, or None when too little to judge."""
    usable = [h.value for h in history if not ratio or h.volume >= cfg.min_volume]
    if len(usable) < cfg.min_history:
        return None
    median = statistics.median(usable)
    if ratio and point.volume < cfg.min_volume:
        return None
    if not ratio and statistics.median(h.volume for h in history) < cfg.min_volume:
        return None
    mad = statistics.median(abs(v - median) for v in usable)
    scale = max(MAD_SCALE * mad, 1e-9)
    score = (point.value - median) / scale
    low = score <= -cfg.threshold and point.value <= median * (1 - cfg.min_drop)
    return Verdict(low, median, mad, score)


def severity(score: float, cfg: AnomalyConfig) -> str:
    return "critical" if score <= -2 * cfg.threshold else "warning"


def alert_id(metric: str, minute: int) -> str:
    """Stable across replays, workers and deployments: an episode's id is its metric and
    first minute, so a replay of the same log raises the same ids."""
    return hashlib.sha256(f"{metric}|{minute}".encode()).hexdigest()[:24]


def quiet_through(series: dict[str, dict[int, Point]], minute: int, window: int) -> bool:
    """True when no metric has any volume in the ``window`` minutes ending at ``minute``.

    Then every later minute up to the next one with data judges nothing (its window holds no
    volume, so ``judge`` says too little for every metric), and the judge may jump over them.
    """
    start = minute - (window - 1) * MINUTE_MS
    return all(p.volume == 0 for points in series.values()
               for m, p in points.items() if start <= m <= minute)


def episodes(
    series: dict[str, dict[int, Point]], minutes: list[int], window: int, open_: dict[str, int],
    cfg: AnomalyConfig, ratios: frozenset[str],
) -> list[dict[str, Any]]:
    """Judge ``minutes`` in order for every metric; updates ``open_`` (metric -> minute its
    episode opened) and returns the anomaly documents of episodes opened."""
    docs: list[dict[str, Any]] = []
    for m in minutes:
        for metric in sorted(series):
            points = series[metric]
            point = points.get(m)
            if point is None:
                continue
            history = [points[h] for h in range(m - window * MINUTE_MS, m, MINUTE_MS)
                       if h in points]
            verdict = judge(point, history, cfg, metric in ratios)
            if verdict is None:
                continue
            if not verdict.anomalous:
                open_.pop(metric, None)
                continue
            if metric in open_:
                continue
            open_[metric] = m
            docs.append({
                "type": "ops_anomaly", "alert_id": alert_id(metric, m),
                "metric": metric, "minute": m, "value": point.value,
                "baseline": verdict.baseline, "mad": verdict.mad,
                "score": round(verdict.score, 3), "severity": severity(verdict.score, cfg),
                "direction": "drop", "window_minutes": window,
            })
    return docs
