"""Flash-sale claim throughput and latency: the Lua path alone (one call per claim, and
grouped per sale as the API does), and through the HTTP API.

Starts its own redis-server and Tansu broker (embedded infra) unless SHOPSTREAM_REDIS_URL /
SHOPSTREAM_BROKER are set, and an API subprocess for the HTTP part. Usage:

    python bench/claims_bench.py [--claims 20000] [--concurrency 64] [--stock 1000]
                                 [--http-rate 5000]

Each claim is timed from send to answer; claims/s is claims over wall time of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import quantile, scrape_histogram, since  # noqa: E402
from shopstream.infra import free_port, start_broker, start_redis, stop  # noqa: E402
from shopstream.sinks.flash_sale.claim_batcher import ClaimBatcher  # noqa: E402
from shopstream.sinks.flash_sale.store import ClaimResult, FlashSales, SaleSpec  # noqa: E402

CLAIM_METRIC = "shopstream_flash_sale_claim_seconds"


@dataclasses.dataclass
class Measured:
    """One run: claims timed from send to answer, over the run's wall time."""

    name: str
    latencies: list[float]
    wall_s: float
    results: dict[str, int]
    note: str = ""
    #: p50/p99 (ms) inside the API process (its claim histogram), for HTTP runs.
    inside_ms: tuple[float, float] | None = None
    #: Units the successful claims were granted, and the sale's stock: granted > stock would
    #: be an oversell.
    units: int = 0
    stock: int = 0

    def quantile_ms(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.wall_s

    def as_dict(self, prefix: str) -> dict[str, float | str]:
        out: dict[str, float | str] = {f"{prefix}_claims_per_s": round(self.per_s),
               f"{prefix}_p50_ms": round(self.quantile_ms(0.5), 2),
               f"{prefix}_p99_ms": round(self.quantile_ms(0.99), 2)}
        if self.inside_ms:
            out[f"{prefix}_inside_api_p50_ms"] = round(self.inside_ms[0], 2)
            out[f"{prefix}_inside_api_p99_ms"] = round(self.inside_ms[1], 2)
        out[f"{prefix}_units_granted_of_stock"] = f"{self.units}/{self.stock}"
        return out

    def __str__(self) -> str:
        return (f"{self.name:<5} claims={len(self.latencies):>6} claims/s={self.per_s:>9,.0f} "
                f"p50={self.quantile_ms(0.5):6.2f}ms p99={self.quantile_ms(0.99):6.2f}ms "
                f"results={self.results} units={self.units}/{self.stock}{self.note}" + (
                    f" inside the API: p50={self.inside_ms[0]:.2f}ms p99={self.inside_ms[1]:.2f}ms"
                    if self.inside_ms else ""))


def plan(n: int, users: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(f"u{rng.randrange(users)}", 3 if rng.random() < 0.1 else 1) for _ in range(n)]


def spec(sale_id: str, stock: int) -> SaleSpec:
    now = int(time.time() * 1000)
    return SaleSpec(sale_id, f"sku-{sale_id}", stock, 2, now - 1000, now + 3_600_000, 900, (10,))


async def bench_lua(redis_url: str, claims: int, concurrency: int, stock: int,
                    grouped: bool = False) -> Measured:
    """Concurrent clients on one sale: one script call per claim, or ``grouped`` per sale as
    the API does (group commit, sinks/flash_sale/claim_batcher.py)."""
    r = aioredis.Redis.from_url(redis_url, max_connections=concurrency)
    sales = FlashSales(r, f"bench{os.getpid()}")
    sale = f"{'group' if grouped else 'lua'}{concurrency}"
    await sales.create(spec(sale, stock))
    batcher = ClaimBatcher(sales, lambda: int(time.time() * 1000))
    jobs = plan(claims, claims // 10, 4 if grouped else 1)
    lat: list[float] = []
    results: dict[str, int] = {}
    units = 0

    async def claim(user: str, qty: int) -> ClaimResult:
        if grouped:
            return (await batcher.claim(sale, user, qty))[0]
        return await sales.claim(sale, user, qty, int(time.time() * 1000))

    async def worker(part: list[tuple[str, int]]) -> None:
        nonlocal units
        for user, qty in part:
            t = time.perf_counter()
            res = await claim(user, qty)
            lat.append(time.perf_counter() - t)
            results[res.result] = results.get(res.result, 0) + 1
            units += qty if res.result == "ok" else 0

    started = time.perf_counter()
    await asyncio.gather(*(worker(jobs[i::concurrency]) for i in range(concurrency)))
    wall = time.perf_counter() - started
    await r.aclose()
    if grouped:
        return Measured("group", lat, wall, results, f" ({claims / batcher.calls:.1f} claims/call)",
                        units=units, stock=stock)
    return Measured("lua", lat, wall, results, units=units, stock=stock)


async def bench_lua_pipelined(redis_url: str, claims: int, stock: int,
                              depth: int = 200) -> Measured:
    """Claims sent as pipelines of ``depth`` script calls: what Redis itself sustains when the
    Python client's per-call cost is amortised (many API processes in front of one Redis)."""
    r = aioredis.Redis.from_url(redis_url)
    sales = FlashSales(r, f"benchp{os.getpid()}")
    await sales.create(spec("pipe", stock))
    await r.config_resetstat()  # commandstats below count this run only
    keys = list(sales.keys("pipe"))
    jobs = plan(claims, claims // 10, 3)
    lat: list[float] = []
    results: dict[str, int] = {}
    started = time.perf_counter()
    for i in range(0, len(jobs), depth):
        chunk = jobs[i:i + depth]
        t = time.perf_counter()
        async with r.pipeline(transaction=False) as pipe:
            for user, qty in chunk:
                await sales._claim(keys=keys, args=[int(time.time() * 1000), user, qty],
                                   client=pipe)
            rows = await pipe.execute()
        per_claim = (time.perf_counter() - t) / len(chunk)
        lat += [per_claim] * len(chunk)
        for row in rows:
            key = row[0].decode()
            results[key] = results.get(key, 0) + 1
    wall = time.perf_counter() - started
    stats = (await r.info("commandstats")).get("cmdstat_evalsha", {})
    await r.aclose()
    usec = float(stats.get("usec_per_call", 0.0))
    server = f"\nredis  evalsha {usec:.1f} us/call inside redis-server -> ceiling " \
             f"~{1e6 / usec:,.0f} claims/s per Redis shard" if usec else ""
    return Measured("pipe", lat, wall, results, f" (latency = pipeline time / {depth}){server}")


async def bench_http(port: int, token: str, claims: int, concurrency: int, stock: int,
                     rate: float | None = None) -> Measured:
    """Closed loop (``concurrency`` clients, each waits for its answer), or open loop when
    ``rate`` is given: claims sent at that rate whatever the answers, so latency is that of
    the offered load (a closed loop slows down with the server and hides queueing)."""
    base = f"http://127.0.0.1:{port}"
    lat: list[float] = []
    results: dict[str, int] = {}
    granted: list[int] = []
    jobs = plan(claims, claims // 10, 2 if rate is None else 5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        sale = f"http{concurrency}" if rate is None else f"paced{int(rate)}"
        body: dict[str, Any] = dataclasses.asdict(spec(sale, stock))
        body.pop("low_stock_pct")
        async with s.post(f"{base}/v1/flash-sales", json=body,
                          headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 201, await resp.text()

        async def one(user: str, qty: int) -> None:
            t = time.perf_counter()
            async with s.post(f"{base}/v1/flash-sales/{sale}/claims",
                              json={"user_id": user, "qty": qty}) as resp:
                doc = await resp.json()
            lat.append(time.perf_counter() - t)
            key = "ok" if resp.status == 200 else doc.get("reason", str(resp.status))
            results[key] = results.get(key, 0) + 1
            if key == "ok":
                granted.append(qty)

        async def worker(part: list[tuple[str, int]]) -> None:
            for user, qty in part:
                await one(user, qty)

        async def paced(rate: float) -> None:
            tasks = []
            for i, (user, qty) in enumerate(jobs):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(user, qty)))
            await asyncio.gather(*tasks)

        # open the connections up front
        await asyncio.gather(*(worker(jobs[:1]) for _ in range(concurrency)))
        lat.clear()
        results.clear()
        before = scrape_histogram(port, CLAIM_METRIC)
        started = time.perf_counter()
        if rate is None:
            await asyncio.gather(*(worker(jobs[i::concurrency]) for i in range(concurrency)))
        else:
            await paced(rate)
        wall = time.perf_counter() - started
    after = scrape_histogram(port, CLAIM_METRIC)
    inside = since(after, before)
    return Measured("http" if rate is None else "paced", lat, wall, results,
                    "" if rate is None else f" (offered {rate:,.0f}/s)",
                    (quantile(inside, 0.5) * 1000, quantile(inside, 0.99) * 1000),
                    units=sum(granted), stock=stock)


def wait_up(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("api did not come up")


@contextlib.contextmanager
def api_process(redis_url: str, broker: str, token: str, processes: int = 1) -> Iterator[int]:
    """``shopstream api --processes N`` on a free port; yields the port."""
    port = free_port()
    env = {**os.environ, "SHOPSTREAM_REDIS_URL": redis_url, "SHOPSTREAM_BROKER": broker,
           "SHOPSTREAM_ADMIN_TOKEN": token, "SHOPSTREAM_APP_ID": f"bench{os.getpid()}",
           "SHOPSTREAM_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    api = subprocess.Popen([sys.executable, "-m", "shopstream", "api", "--port", str(port),
                            "--processes", str(processes)],
                           env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_up(port)
        yield port
    finally:
        stop(api)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--claims", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--stock", type=int, default=1_000)
    ap.add_argument("--http-rate", type=float, default=5_000, help="offered claims/s, open loop")
    ap.add_argument("--api-processes", type=int, default=1,
                    help="API processes on the port (`shopstream api --processes N`)")
    args = ap.parse_args()
    procs = []
    redis_url = os.environ.get("SHOPSTREAM_REDIS_URL")
    broker = os.environ.get("SHOPSTREAM_BROKER")
    if not redis_url:
        proc, redis_url = start_redis()
        procs.append(proc)
    if not broker:
        proc, broker = start_broker()
        procs.append(proc)
    token = "bench-token"
    try:
        print(asyncio.run(bench_lua(redis_url, 2_000, 1, args.stock)), "(1 client)")
        print(asyncio.run(bench_lua(redis_url, args.claims, args.concurrency, args.stock)))
        print(asyncio.run(bench_lua(redis_url, args.claims, args.concurrency, args.stock,
                                    grouped=True)))
        print(asyncio.run(bench_lua_pipelined(redis_url, args.claims * 5, args.stock)))
        with api_process(redis_url, broker, token, args.api_processes) as port:
            print(asyncio.run(bench_http(port, token, 2_000, 1, args.stock)), "(1 client)")
            print(asyncio.run(bench_http(port, token, args.claims, args.concurrency, args.stock)))
            print(asyncio.run(bench_http(port, token, args.claims, args.concurrency, args.stock,
                                         rate=args.http_rate)))
    finally:
        for proc in procs:
            stop(proc)


if __name__ == "__main__":
    main()
