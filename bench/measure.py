"""Reading a worker's latency histograms back as Prometheus would, and Redis memory by kind of
state."""

from __future__ import annotations

import tracemalloc
import urllib.request

import redis

from shopstream.streams.dedup import Deduplicator


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


def scrape_gauge(port: int, metric: str) -> float:
    """An unlabelled gauge's value on a /metrics page (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(f"{metric} "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def dedup_bytes_per_id(ids: int = 300_000, horizon_ms: int = 600_000) -> float:
    """Bytes a remembered event id costs the worker (its entry and its bucket's share),
    traced while one partition's deduplicator fills with ids shaped like the bench's live
    ones, two per millisecond of event time."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dedup = Deduplicator(horizon_ms=horizon_ms, max_ids=ids + 1)
        for i in range(ids):
            dedup.is_duplicate(f"L{i % 1000:06d}e{i}", 1_700_000_000_000 + i // 2)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return used / len(dedup)


def key_family(key: bytes) -> str:
    """A key's kind of state: the app id and hash tag dropped, ids and times folded
    (``bench:{p3}:funnel:u:u123`` -> ``funnel:u:*``)."""
    parts = key.decode("utf-8", "replace").split(":")[1:]
    if parts and parts[0].startswith("{"):
        parts = parts[1:]
    kept: list[str] = []
    for part in parts:
        if kept and (part[:1].isdigit() or len(kept) >= 2 and kept[-1] in ("u", "r", "o")
                     or kept[-1] in ("seen", "buyers", "open", "viewers")):
            kept.append("*")
            break
        kept.append(part)
    return ":".join(kept)


def memory_by_family(r: redis.Redis, sample_every: int = 20) -> dict[str, tuple[int, int]]:
    """{family: (keys, estimated bytes)} over every key, from MEMORY USAGE of one key in
    ``sample_every`` per family (the first of each family always)."""
    seen: dict[str, int] = {}
    sampled: dict[str, list[int]] = {}
    pipe = r.pipeline(transaction=False)
    asked: list[str] = []
    for key in r.scan_iter(count=10_000):
        fam = key_family(key)
        n = seen.get(fam, 0)
        seen[fam] = n + 1
        if n % sample_every == 0:
            pipe.memory_usage(key, samples=0)
            asked.append(fam)
    for fam, size in zip(asked, pipe.execute(), strict=True):
        sampled.setdefault(fam, []).append(int(size or 0))
    sizes = {fam: (n, round(n * sum(sampled[fam]) / len(sampled[fam]))) for fam, n in seen.items()}
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1][1]))
