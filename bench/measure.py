"""Reading latency histograms back from a /metrics page, as Prometheus would."""

from __future__ import annotations

import urllib.request


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus histogram_quantile over cumulative (upper bound, count) pairs."""
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return prev_le


def since(after: list[tuple[float, float]],
          before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The observations between two scrapes of one histogram, as cumulative pairs."""
    return [(le, n - n0) for (le, n), (_, n0) in zip(after, before, strict=True)]


def scrape_histogram(port: int, metric: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram on a /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = []
    for line in text.splitlines():
        if line.startswith(f"{metric}_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out.append((float(le), float(line.rsplit(" ", 1)[1])))
    return out
