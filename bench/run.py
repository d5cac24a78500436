"""Benchmark: one worker on the mixed promotion workload.

Phase 1 (throughput): N simulated events are written to the events topic (in envelopes), then
one worker with all agents is started and timed from owning its partitions to the last event.
Phase 2 (latency and memory): live traffic at a fraction of that peak for a while; the
worker's sampled event-to-state histogram gives p50/p99, and its RSS is sampled for a trend.
Phase 3: flash-sale claims through the Lua path alone and over HTTP (bench/claims_bench.py).
With ``--baselines N``: shopstream, a naive Faust agent and Quix Streams on the same N events
(bench/compare.py), funnels checked against the reference, ratios reported.
Prints a table and writes JSON. No thresholds are asserted.

    python bench/run.py [--events 1000000] [--live-seconds 60] [--baselines 200000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import claims_bench, compare, targets  # noqa: E402
from bench.measure import (  # noqa: E402
    dedup_bytes_per_id,
    memory_by_family,
    quantile,
    scrape_gauge,
    scrape_histogram,
    since,
)
from shopstream.core import codec  # noqa: E402
from shopstream.core.settings import Settings, load_settings  # noqa: E402
from shopstream.infra import embedded, free_port  # noqa: E402
from shopstream.kafka_io.envelope_producer import EnvelopeProducer  # noqa: E402
from shopstream.kafka_io.partitioner import partition_for  # noqa: E402
from shopstream.kafka_io.producer import make_producer  # noqa: E402
from shopstream.kafka_io.topics import ensure_topics  # noqa: E402
from shopstream.simulate import Simulator  # noqa: E402
from shopstream.simulate_customers import CustomerPlan  # noqa: E402
from shopstream.simulate_money import MoneyPlan  # noqa: E402
from shopstream.sinks import keys  # noqa: E402
from shopstream.sinks.coupons.keys import coupon_keys  # noqa: E402
from shopstream.sinks.funnel.keys import user_key as funnel_user_key  # noqa: E402
from shopstream.streams.dedup import GENERATIONS  # noqa: E402


def applied(r: redis.Redis, app_id: str, partitions: int) -> int:
    return sum(int(r.hget(keys.counts(app_id, p), "in") or 0) for p in range(partitions))


def pushes_decided(r: redis.Redis, app_id: str, partitions: int) -> tuple[int, int]:
    """(pushes relayed with a final result, pushes still waiting in outboxes)."""
    # Results are kept per business day: a run across midnight has some in the previous one.
    done = sum(r.hlen(k.push_results) + r.hlen(k.push_results_prev)
               for k in (coupon_keys(app_id, p) for p in range(partitions)))
    waiting = sum(r.hlen(coupon_keys(app_id, p).outbox) for p in range(partitions))
    return done, waiting


def memory_per_user(r: redis.Redis, users: list[str], partitions: int,
                    sample: int = 5_000) -> tuple[float, float]:
    """(Redis used_memory per active user, mean MEMORY USAGE of a user's funnel progress
    over a sample of users that have some)."""
    used = int(r.info("memory")["used_memory"])
    step = max(1, len(users) // sample)
    pipe = r.pipeline(transaction=False)
    for u in users[::step]:
        pipe.memory_usage(funnel_user_key("bench", partition_for(u, partitions), u))
    sizes = [n for n in pipe.execute() if n]
    return used / max(len(users), 1), sum(sizes) / max(len(sizes), 1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


LAG_METRIC = "shopstream_event_to_state_seconds"


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, MB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 60 if var else 0.0


#: Stand for the send time and the pass over the pool in pre-encoded live envelopes.
TS_PLACEHOLDER = b"9999999999999"
PASS_PLACEHOLDER = b"#pass#"
#: Events per live envelope: small, so that pacing stays smooth at every rate.
LIVE_ENVELOPE = 50
#: Distinct pre-encoded live events; longer runs send the pool again with new event ids
#: (encoding every event of a 10-minute run up front took more memory than the machine has).
LIVE_POOL = 500_000


def live_envelopes(s: Settings, count: int) -> list[tuple[int, bytes, int]]:
    """Pre-encoded (partition, envelope, events) so that the load generator costs ~nothing
    and the worker, not the generator, is what the latency measures."""
    by_part: dict[int, list[bytes]] = {}
    for ev in Simulator(users=200_000, rate=5_000, seed=43).events(min(count, LIVE_POOL)):
        ev["event_id"] = "L" + PASS_PLACEHOLDER.decode() + ev["event_id"]
        ev["ts"] = int(TS_PLACEHOLDER)
        by_part.setdefault(partition_for(ev["user_id"], s.partitions), []).append(codec.dumps(ev))
    out = []
    for part, items in by_part.items():
        for i in range(0, len(items), LIVE_ENVELOPE):
            chunk = items[i:i + LIVE_ENVELOPE]
            out.append((part, b"[" + b",".join(chunk) + b"]", len(chunk)))
    random.Random(1).shuffle(out)
    return out


def send_paced(s: Settings, envelopes: list[tuple[int, bytes, int]], rate: float,
               count: int) -> None:
    """Send ``count`` events at ``rate`` events/s, each envelope stamped with the wall clock as
    it leaves, passing over the pool as often as needed."""
    prod = make_producer(s, **{"linger.ms": 2})
    started = time.perf_counter()
    sent = 0
    rounds = 0
    while sent < count:
        tag = b"%06d" % rounds
        for part, body, n in envelopes:
            if sent >= count:
                break
            due = started + sent / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.002))
            stamp = str(int(time.time() * 1000)).encode()
            body = body.replace(TS_PLACEHOLDER, stamp).replace(PASS_PLACEHOLDER, tag)
            while True:
                try:
                    prod.produce(s.events_topic, body, partition=part)
                    break
                except BufferError:
                    prod.poll(0.01)
            prod.poll(0)
            sent += n
        rounds += 1
    prod.flush(30)


#: Seconds between the live phase's progress lines (latency of that window, RSS).
LIVE_REPORT_S = 10
DEDUP_METRIC = "shopstream_dedup_ids"


def rss_formula_mb(s: Settings, rss_mb_now: float, ids_now: float, rate: float) -> dict[str, float]:
    """The worker's RSS once its dedup horizon is full at ``rate``: what it holds besides
    event ids, plus bytes per id x the ids of one horizon (and 1/GENERATIONS more, the
    generation not yet dropped), capped at ``dedup_max_ids`` per partition."""
    per_id = dedup_bytes_per_id(horizon_ms=s.dedup_horizon_ms)
    base_mb = rss_mb_now - ids_now * per_id / 2**20
    ids_full = min(rate * s.dedup_horizon_ms / 1000 * (1 + 1 / GENERATIONS),
                   s.partitions * s.dedup_max_ids)
    return {"dedup_bytes_per_id": round(per_id, 1), "worker_rss_base_mb": round(base_mb, 1),
            "dedup_ids_horizon_full": round(ids_full),
            "worker_rss_formula_mb": round(base_mb + ids_full * per_id / 2**20, 1)}


def live_phase(s: Settings, r: redis.Redis, worker: subprocess.Popen[bytes],
               web_port: int, rate: float, seconds: float,
               servers: dict[str, int]) -> dict[str, float]:
    """Paced live traffic; latency from the worker's histogram (minus what phase 1 left)."""
    expected = int(rate * seconds)
    envelopes = live_envelopes(s, expected)
    before = scrape_histogram(web_port, LAG_METRIC)
    ids_before, rss_before = scrape_gauge(web_port, DEDUP_METRIC), rss_mb(worker.pid)
    start_in = applied(r, "bench", s.partitions)
    sender = threading.Thread(target=send_paced, args=(s, envelopes, rate, expected))
    started = time.perf_counter()
    sender.start()
    samples: list[tuple[float, float]] = []
    server_rss: dict[str, list[float]] = {name: [] for name in servers}
    worst_p99 = 0.0
    last, last_t = before, started
    while sender.is_alive():
        now = time.perf_counter()
        samples.append((now - started, rss_mb(worker.pid)))
        if now - last_t >= LIVE_REPORT_S:
            hist = scrape_histogram(web_port, LAG_METRIC)
            window = since(hist, last)
            p50, p99 = quantile(window, 0.50) * 1000, quantile(window, 0.99) * 1000
            worst_p99 = max(worst_p99, p99)
            for name, pid in servers.items():
                server_rss[name].append(rss_mb(pid))
            others = "  ".join(f"{name} {mb[-1]:.0f} MB" for name, mb in server_rss.items())
            print(f"bench: live {now - started:4.0f}s  p50 {p50:6.0f} ms  p99 {p99:6.0f} ms  "
                  f"worker RSS {samples[-1][1]:.0f} MB  {others}", file=sys.stderr, flush=True)
            last, last_t = hist, now
        sender.join(2.0)
    partitions = s.partitions
    deadline = time.perf_counter() + 60
    while applied(r, "bench", partitions) - start_in < expected and time.perf_counter() < deadline:
        time.sleep(0.1)
    after = scrape_histogram(web_port, LAG_METRIC)
    delta = since(after, before)
    return {
        **rss_formula_mb(s, rss_before, ids_before, rate),
        "dedup_ids_at_live_end": round(scrape_gauge(web_port, DEDUP_METRIC)),
        "live_rate_events_per_s": rate,
        "live_seconds": seconds,
        "latency_p50_ms": round(quantile(delta, 0.50) * 1000, 1),
        "latency_p99_ms": round(quantile(delta, 0.99) * 1000, 1),
        f"latency_worst_{LIVE_REPORT_S}s_p99_ms": round(worst_p99, 1),
        "worker_rss_start_mb": round(samples[0][1], 1) if samples else 0.0,
        "worker_rss_end_mb": round(samples[-1][1], 1) if samples else 0.0,
        "worker_rss_trend_mb_per_min": round(slope_mb_per_min(samples[len(samples) // 4:]), 2),
        **{f"{name}_rss_end_mb": round(mb[-1], 1) for name, mb in server_rss.items() if mb},
    }


def funnels_toml(n: int) -> str:
    """``n`` funnels for the worker (none: the default purchase funnel), varied in steps,
    windows and breakdowns so each does its own work."""
    if n <= 1:
        return ""
    steps = ('"page_view", "product_view", "cart_add", "order_submit"',
             '"product_view", "cart_add", "order_submit", "payment"',
             '"page_view", "cart_add", "payment"',
             '"live_join", "order_submit", "payment"')
    breakdowns = ('"channel"', '"channel", "region"', '"device"', '"campaign", "channel"')
    return "".join(
        f'\n[[funnels]]\nname = "f{i}"\nsteps = [{steps[i % 4]}]\n'
        f'breakdowns = [{breakdowns[(i // 4) % 4]}]\nwindow_ms = {(i % 3 + 1) * 1_800_000}\n'
        for i in range(n))


def wait_assigned(worker: subprocess.Popen[bytes], web_port: int, timeout_s: float = 60) -> None:
    """Until the worker's /healthz lists partitions it owns."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if worker.poll() is not None:
            raise SystemExit("worker died")
        try:
            url = f"http://127.0.0.1:{web_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                if json.loads(resp.read()).get("partitions"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit("worker got no partitions")


def claims_phase(redis_url: str, broker: str, claims: int,
                 api_processes: int = 1) -> dict[str, float | str]:
    """Flash-sale claims on the same infra: the Lua path alone (grouped per sale, as the API
    calls it) and over HTTP, closed loop with 64 clients and open loop at 5,000 claims/s."""
    print("bench: flash-sale claims ...", file=sys.stderr, flush=True)
    stock = max(1, claims // 20)
    lua = asyncio.run(claims_bench.bench_lua(redis_url, claims, 64, stock, grouped=True))
    with claims_bench.api_process(redis_url, broker, "bench-token", api_processes) as port:
        http = asyncio.run(claims_bench.bench_http(port, "bench-token", claims, 64, stock))
        paced = asyncio.run(claims_bench.bench_http(port, "bench-token", claims, 64, stock,
                                                    rate=5_000))
    return {**lua.as_dict("lua"), **http.as_dict("http"), **paced.as_dict("http_at_5000")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--live-seconds", type=float, default=60.0)
    ap.add_argument("--live-fraction", type=float, default=0.5, help="of the measured peak")
    ap.add_argument("--quick", action="store_true", help="50,000 events, 10 s live")
    ap.add_argument("--json", default=str(ROOT / "bench" / "result.json"))
    ap.add_argument("--no-claims", action="store_true", help="skip the flash-sale claims phase")
    ap.add_argument("--api-processes", type=int, default=1,
                    help="API processes answering the claims over HTTP")
    ap.add_argument("--claims", type=int, default=20_000,
                    help="claims per claims run (stock: one unit per 20 claims)")
    ap.add_argument("--baselines", type=int, default=0, metavar="EVENTS",
                    help="also run bench/compare.py on this many events (naive Faust, Quix)")
    ap.add_argument("--users", type=int, default=200_000, help="simulated user population")
    ap.add_argument("--funnels", type=int, default=1, help="funnels configured (1 = default)")
    ap.add_argument("--rooms", type=int, default=6, help="live rooms on air at once")
    ap.add_argument("--workers", type=int, default=1, help="workers sharing the partitions")
    ap.add_argument("--money", action="store_true",
                    help="the money view's traffic too (ad spend, stock counts, returns; "
                         "simulate --money), for runs with its capabilities")
    ap.add_argument("--customers", action="store_true",
                    help="the customer loop's traffic too (reviews, check-ins, referrals, group "
                         "joins, redemptions; simulate --customers), for runs with its "
                         "capabilities")
    ap.add_argument("--agents", default=None,
                    help="the worker's agents, comma-separated (default: the setting's default); "
                         "two runs with and without a capability give its cost")
    ap.add_argument("--dedup-horizon-ms", type=int, default=None,
                    help="worker's dedup horizon (its memory grows for one horizon, then is flat)")
    args = ap.parse_args()
    n = 50_000 if args.quick else args.events
    live_s = 10.0 if args.quick else args.live_seconds

    with embedded(durable=False) as infra:
        horizon = {} if args.dedup_horizon_ms is None else {
            "dedup_horizon_ms": args.dedup_horizon_ms}
        s = load_settings(env={}, broker=infra.broker, redis_url=infra.redis_url,
                          partitions=args.partitions, app_id="bench", **horizon)
        ensure_topics(s)
        print(f"bench: producing {n:,} events ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        prod = EnvelopeProducer(s, max_events=500)
        # The log ends about now, so that the live phase continues it (a jump in event time
        # would fire every timer at once).
        sim_rate = 5_000
        start_ms = int(time.time() * 1000) - n * 1000 // sim_rate
        users: set[str] = set()
        sim = Simulator(users=args.users, rate=sim_rate, seed=42, start_ms=start_ms,
                        rooms=args.rooms, money=MoneyPlan() if args.money else None,
                        customers=CustomerPlan() if args.customers else None)
        for ev in sim.events(n):
            if "user_id" in ev:  # spend, stock counts and referrals have none
                users.add(ev["user_id"])
            prod.add(ev)
        prod.flush()
        produce_s = time.perf_counter() - t0
        total = prod.events_sent
        del prod  # its client would keep reconnecting once the embedded broker is gone

        # Quiet hours off ("00:00-00:00"): pushes are then decided and relayed whatever the
        # hour the bench runs at (in quiet hours they would wait for 08:00 in Redis).
        config = Path(tempfile.mkdtemp(prefix="shopstream-bench-")) / "bench.toml"
        config.write_text('[coupons]\nquiet_hours = "00:00-00:00"\n' + funnels_toml(args.funnels))
        env = {**os.environ, "SHOPSTREAM_CONFIG": str(config), "SHOPSTREAM_BROKER": infra.broker,
               "SHOPSTREAM_REDIS_URL": infra.redis_url, "SHOPSTREAM_APP_ID": "bench",
               "SHOPSTREAM_PARTITIONS": str(args.partitions), "PYTHONPATH": str(ROOT),
               "SHOPSTREAM_LOG_LEVEL": "WARNING"}
        if args.agents is not None:
            env["SHOPSTREAM_AGENTS"] = args.agents
        if args.dedup_horizon_ms is not None:
            env["SHOPSTREAM_DEDUP_HORIZON_MS"] = str(args.dedup_horizon_ms)
        web_ports = [free_port() for _ in range(args.workers)]
        workers = [subprocess.Popen(
            [sys.executable, "-m", "shopstream", "worker", "--web-port", str(port)],
            env=env, cwd=ROOT) for port in web_ports]
        worker, web_port = workers[0], web_ports[0]
        r = redis.Redis.from_url(infra.redis_url)
        try:
            # The clock starts once the worker owns its partitions: timing from the first
            # applied event would miss the events of the first batches.
            for w, port in zip(workers, web_ports, strict=True):
                wait_assigned(w, port)
            first_t = time.perf_counter()
            first_n = applied(r, "bench", args.partitions)
            rss_peak = 0.0
            last_report = first_t
            while True:
                done = applied(r, "bench", args.partitions)
                now = time.perf_counter()
                rss_peak = max(rss_peak, sum(rss_mb(w.pid) for w in workers))
                if done >= total:
                    break
                if now - last_report >= 5:
                    last_report = now
                    print(f"bench: {done:,}/{total:,} applied", file=sys.stderr, flush=True)
                if any(w.poll() is not None for w in workers):
                    raise SystemExit("worker died")
                time.sleep(0.05)
            elapsed = now - first_t
            rate = (total - first_n) / elapsed if elapsed > 0 else float("nan")
            redis_mem = int(r.info("memory")["used_memory"])
            per_user, progress_per_user = memory_per_user(r, sorted(users), args.partitions)
            relayed, waiting = pushes_decided(r, "bench", args.partitions)
            families = memory_by_family(r)
            for fam, (count, size) in list(families.items())[:12]:
                print(f"bench: redis {fam:<24} {count:>9,} keys  "
                      f"{size / max(len(users), 1):6.0f} bytes per active user",
                      file=sys.stderr, flush=True)
            print(f"bench: live phase at {rate * args.live_fraction:,.0f} events/s "
                  f"for {live_s:.0f}s ...", file=sys.stderr, flush=True)
            servers = {"broker": infra.procs[0].pid, "redis": infra.procs[-1].pid}
            live = live_phase(s, r, worker, web_port, round(rate * args.live_fraction), live_s,
                              servers)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)
            r.close()
        claims = {} if args.no_claims else claims_phase(infra.redis_url, infra.broker,
                                                        args.claims, args.api_processes)
    baselines = {}
    if args.baselines:
        print("bench: baselines ...", file=sys.stderr, flush=True)
        baselines = {f"baseline_{k}": v for k, v in compare.compare(args.baselines).items()
                     if k != "machine"}

    result = {
        "events": total,
        "produce_events_per_s": round(total / produce_s),
        "worker_events_per_s": round(rate),
        "worker_rss_peak_mb": round(rss_peak, 1),
        "redis_used_memory_mb": round(redis_mem / 2**20, 1),
        "active_users": len(users),
        "redis_bytes_per_active_user": round(per_user),
        "funnel_progress_bytes_per_user": round(progress_per_user),
        "redis_bytes_per_active_user_by_family": {
            fam: round(size / max(len(users), 1)) for fam, (_, size) in families.items()
            if size / max(len(users), 1) >= 1},
        "pushes_relayed_at_phase1_end": relayed,
        "pushes_in_outbox_at_phase1_end": waiting,
        **live,
        **claims,
        **baselines,
        "partitions": args.partitions,
        "users": args.users, "funnels": args.funnels, "rooms": args.rooms,
        "workers": args.workers, "agents": args.agents or s.agents, "money": args.money,
        "customers": args.customers,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }
    checked = targets.check(result, targets.RUN) + (
        targets.check(result, targets.COMPARE, prefix="baseline_") if baselines else [])
    result["targets"] = checked
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for k, v in result.items():
        if k != "targets":
            print(f"{k:<{width}}  {v}")
    targets.print_table(checked)
    if live_s < 600:
        print(f"(the live p99 target is for every 10-s window of 600 s; this run's live phase "
              f"was {live_s:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
