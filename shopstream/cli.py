"""The ``shopstream`` command: infra, config, worker, relay, api, replay, simulate, demo,
backtest."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from shopstream import __version__
from shopstream.core import logs
from shopstream.core.env import ENV_FIELDS
from shopstream.core.errors import ConfigError, ShopstreamError
from shopstream.core.settings import (
    Settings,
    infra_state_path,
    load_settings,
    mask_url,
    running_infra,
)
from shopstream.infra import free_port

#: Exit statuses: a failure while running; a usage error (bad arguments, a missing file, a
#: command declined); invalid settings; a port already taken.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_PORT_BUSY = 4

log = logging.getLogger("shopstream")


def _wait_for_stop(every_s: float, check: Callable[[], object]) -> None:
    """Block until SIGINT or SIGTERM, calling ``check`` every ``every_s`` meanwhile."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(every_s):
        check()


def cmd_infra(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.infra import embedded
    from shopstream.kafka_io.topics import ensure_topics

    with embedded(settings.state_dir) as infra:
        ensure_topics(load_settings(broker=infra.broker, redis_url=infra.redis_url))
        state = infra_state_path(settings.state_dir).resolve()
        # The password stays in the state file (mode 0600); the export line reads it from there.
        read_url = ("python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))"
                    f"[\"redis_url\"])' {state}")
        print(f"""broker: {infra.broker}
redis:  {mask_url(infra.redis_url)}
Commands run here find both through {state} (mode 0600, it holds the Redis password).
From elsewhere:
export SHOPSTREAM_BROKER={infra.broker}
export SHOPSTREAM_REDIS_URL="$({read_url})"
Ctrl-C stops both.""", flush=True)
        _wait_for_stop(1.0, infra.supervise)
    return 0


#: What ``config`` shows for a server that would come from ``shopstream infra``, not running.
NOT_RUNNING = "embedded, not running (start `shopstream infra`)"


def shown_settings(settings: Settings) -> dict[str, Any]:
    """``public_dict`` with the broker and Redis said as they will be used: the embedded infra's
    (and which state file named them), or embedded but not running."""
    out = settings.public_dict()
    path = infra_state_path(settings.state_dir)
    state = running_infra(settings.state_dir)
    for name in ("broker", "redis_url"):
        value = getattr(settings, name)
        if value is None:
            out[name] = NOT_RUNNING
        elif state.get(name) == value:
            out[name] = f"embedded (from {path}: {mask_url(value)})"
    return out


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    print(orjson.dumps(shown_settings(settings), option=orjson.OPT_INDENT_2).decode())
    return 0


def _port_taken(command: str, host: str, port: int, flag: str) -> bool:
    """True, after one line saying what to do, when ``port`` on ``host`` is already taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers bind: a port left in TIME_WAIT by a stopped process is free to them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            print(f"shopstream {command}: port {port} on {host} is taken (another {command}?): "
                  f"pass {flag} N, or {flag} 0 for a free one", file=sys.stderr)
            return True
    return False


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.agents.registry import PUSHING, check_config, selected
    from shopstream.kafka_io.topics import ensure_topics

    if _port_taken("worker", settings.worker_web_host, settings.worker_web_port, "--web-port"):
        return EXIT_PORT_BUSY
    if args.processes < 1:
        print("shopstream worker: --processes: expected >= 1", file=sys.stderr)
        return 2
    check_config(settings)
    ensure_topics(settings)
    relay = None
    if (settings.relay == "process" and PUSHING & set(selected(settings))
            and not args.no_relay):
        from shopstream.relay import RelaySupervisor

        # One relay beside the processes of this command: it relays every partition.
        relay = RelaySupervisor(lambda: _shopstream(args, "relay", "--parent", str(os.getpid())))
    # The others join the same consumer group, each its own process, on a free web port.
    others = [_shopstream(args, "worker", "--web-port", "0", "--no-relay")
              for _ in range(args.processes - 1)]
    try:
        _run_worker(settings)
    finally:
        if relay is not None:
            relay.stop()
        _stop(others)
    return 0


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from shopstream.agents.registry import check_config
    from shopstream.kafka_io.topics import ensure_topics
    from shopstream.relay import run_relay

    check_config(settings)
    if args.parent is None:  # a worker starting one has made the topics
        ensure_topics(settings)
    asyncio.run(run_relay(settings, args.parent))
    return 0


def _shopstream(args: argparse.Namespace, *command: str) -> subprocess.Popen[bytes]:
    """Another shopstream process with this one's settings file (and environment)."""
    config = ["--config", args.config] if args.config else []
    return subprocess.Popen([sys.executable, "-m", "shopstream", *config, *command])


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _run_worker(settings: Settings) -> None:
    from faust.worker import Worker

    from shopstream.streams.app import create_app

    app = create_app(settings)
    logs.setup(settings.log_level)
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False,
                    override_logging=False)
    # Faust's start-up spinner writes cursor escapes even into a log file: none here.
    worker.spinner = None
    log.info("worker starting", extra={"web_port": settings.worker_web_port})
    worker.execute_from_commandline()


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.api import run_api
    from shopstream.http_auth import check_exposure
    from shopstream.kafka_io.topics import ensure_topics

    check_exposure(settings)
    if args.reuse_port:  # one of the processes of `--processes N`, started below
        run_api(settings, reuse_port=True)
        return 0
    if args.processes < 1:
        print("shopstream api: --processes: expected >= 1", file=sys.stderr)
        return 2
    if _port_taken("api", settings.api_host, settings.api_port, "--port"):
        return EXIT_PORT_BUSY
    ensure_topics(settings)
    if args.processes == 1:
        run_api(settings)
        return 0
    # Each process has its own event loop and Redis pool on one port (SO_REUSEPORT); the API
    # keeps no state between requests, so any of them may answer any request.
    others = [_shopstream(args, "api", "--host", settings.api_host, "--port",
                          str(settings.api_port), "--reuse-port")
              for _ in range(args.processes - 1)]
    try:
        run_api(settings, reuse_port=True)
    finally:
        _stop(others)
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.replay import applied_events, replay_file, wait_applied

    if not os.path.isfile(args.file):
        print(f"shopstream replay: no such file: {args.file}", file=sys.stderr)
        return EXIT_USAGE
    baseline = applied_events(settings) if args.wait else 0
    sent = replay_file(settings, args.file, rate=args.rate, progress=not args.quiet)
    print(f"replayed {sent} events from {args.file}", file=sys.stderr)
    if args.wait:
        if not wait_applied(settings, baseline, sent, args.wait_timeout):
            print(f"shopstream replay: workers applied fewer than {sent} events within "
                  f"{args.wait_timeout:.0f}s (are workers running?)", file=sys.stderr)
            return EXIT_FAILURE
        print(f"workers applied all {sent} events", file=sys.stderr)
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.simulate import Incident, run_simulation
    from shopstream.simulate_customers import CustomerPlan
    from shopstream.simulate_money import MoneyPlan

    try:
        incidents = tuple(Incident.parse(text) for text in args.incident)
    except ValueError as exc:
        print(f"shopstream simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    if not args.out:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    sent = run_simulation(settings, users=args.users, rate=args.rate, duration_s=args.duration,
                          seed=args.seed, out=args.out, incidents=incidents, stop=stop,
                          money=MoneyPlan() if args.money else None,
                          customers=CustomerPlan() if args.customers else None)
    if not args.out:
        done = "stopped after" if stop.is_set() else "sent"
        print(f"simulate: {done} {sent} events", file=sys.stderr, flush=True)
    return 0


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.backtest import Options, run

    if not os.path.isfile(args.log):
        print(f"shopstream backtest: no such file: {args.log}", file=sys.stderr)
        return EXIT_USAGE
    if args.workers < 1 or not args.attribution_hours > 0:
        print("shopstream backtest: --workers: expected >= 1; --attribution-hours: expected > 0",
              file=sys.stderr)
        return EXIT_USAGE
    run(Options(args.log, args.configs, args.out, args.workers, args.attribution_hours))
    print(f"backtest: report in {os.path.join(args.out, 'report.json')}", file=sys.stderr)
    return 0


def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.tail import tail

    tail(settings, args.kind, from_beginning=args.from_beginning, as_json=args.json,
         max_records=args.max, idle_exit_s=args.idle_exit)
    return 0


def cmd_reset(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from shopstream.sinks.redis_state import make_redis
    from shopstream.sinks.reset import app_keys, delete_app_state

    async def run() -> int:
        redis = make_redis(settings)
        try:
            found = await app_keys(redis, settings.app_id)
            what = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items())) or "none"
            print(f"app {settings.app_id!r} in {mask_url(settings.redis_url)}: "
                  f"{sum(found.values())} keys ({what}): fences, dedup checkpoints, counters, "
                  "dead-letter streams and every capability's state. Kafka topics are not touched.")
            if not args.yes:
                print("nothing deleted: run again with --yes to delete them")
                return EXIT_USAGE
            print(f"deleted {await delete_app_state(redis, settings.app_id)} keys")
            return 0
        finally:
            await redis.aclose()

    return asyncio.run(run())


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from shopstream.demo import run_demo

    return run_demo(settings, duration_s=args.duration, rate=args.rate,
                    config_path=args.config or os.environ.get("SHOPSTREAM_CONFIG") or None)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shopstream", description=__doc__)
    p.add_argument("--config", help="TOML settings file (or SHOPSTREAM_CONFIG)")
    p.add_argument("--version", action="version", version=f"shopstream {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("infra", help="run the embedded broker and redis-server until Ctrl-C")
    sub.add_parser("config", help="print the effective settings")
    w = sub.add_parser("worker", help="run a stream worker")
    w.add_argument("--web-port", type=int, help="port of /metrics and /healthz")
    w.add_argument("--processes", type=int, default=1,
                   help="worker processes in the consumer group (the others on free web ports)")
    w.add_argument("--no-relay", action="store_true", help=argparse.SUPPRESS)
    rl = sub.add_parser("relay", help="relay the coupons' outboxes (each worker starts one "
                                      "beside itself; it also runs on its own)")
    rl.add_argument("--metrics-port", type=int,
                    help="port of the relay's /metrics (relay_web_port), 0 = a free one")
    rl.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    a = sub.add_parser("api", help="run the HTTP API")
    a.add_argument("--host")
    a.add_argument("--port", type=int)
    a.add_argument("--processes", type=int, default=1,
                   help="API processes on one port (SO_REUSEPORT); one per core serves more")
    a.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    r = sub.add_parser("replay", help="produce a JSONL file of events in envelopes")
    r.add_argument("file")
    r.add_argument("--rate", type=float, default=0.0, help="events/s, 0 = as fast as possible")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--wait", action="store_true",
                   help="then show progress until the workers have applied every event")
    r.add_argument("--wait-timeout", type=float, default=600.0, help="seconds (with --wait)")
    s = sub.add_parser("simulate", help="generate realistic promotion traffic")
    s.add_argument("--users", type=int, default=10_000)
    s.add_argument("--rate", type=float, default=2_000.0,
                   help="events per second of traffic (live: paced to it); 0 = as fast as "
                        "possible, the traffic of 2,000 events/s unpaced")
    s.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out", help="write JSONL to this file instead of producing to Kafka")
    s.add_argument("--money", action="store_true",
                   help="with ad spend, stock counts and returns (one campaign's ROAS falls "
                        "under 3 after an hour, a few SKUs run out, one is returned often)")
    s.add_argument("--customers", action="store_true",
                   help="with the customer loop: reviews (some negative, their service tasks "
                        "acked or not), check-ins, referrals, group buys, repeat purchases, "
                        "refunds and points redemptions")
    s.add_argument("--incident", action="append", default=[], metavar="KIND@MINUTES[+LENGTH]",
                   help="inject trouble: payment-failures or orders-drop, from MINUTES after "
                        "the start for LENGTH minutes (default 10); repeatable")
    tl = sub.add_parser("tail", help="follow alerts, dead letters or pushes, a line each")
    tl.add_argument("kind", choices=["alerts", "dead-letters", "pushes", "customer-events"])
    tl.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tl.add_argument("--json", action="store_true", help="one JSON object per record")
    tl.add_argument("--max", type=int, default=0, help="stop after N records (0: never)")
    tl.add_argument("--idle-exit", type=float, default=0.0,
                    help="stop after this many seconds without a record (0: never)")
    bt = sub.add_parser("backtest", help="run a recorded log through the engine once per config, "
                                         "each in a sandbox, and report what each decided")
    bt.add_argument("log", help="JSONL file of events")
    bt.add_argument("--config", dest="configs", action="append", required=True,
                    metavar="FILE", help="TOML settings file to run the log with; repeatable")
    bt.add_argument("--out", default="backtest", help="directory of the report (report.json, "
                                                     "pushes-<label>.jsonl, timings.json)")
    bt.add_argument("--workers", type=int, default=1, help="worker processes per config")
    bt.add_argument("--attribution-hours", type=float, default=24.0,
                    help="window after a push in which a paid order counts as following it")
    z = sub.add_parser("reset", help="delete this app's state from Redis (after a refused fence)")
    z.add_argument("--yes", action="store_true", help="really delete (else only list)")
    d = sub.add_parser("demo", help="infra + worker + api + simulator, URLs printed")
    d.add_argument("--duration", type=float, default=0.0, help="seconds, 0 = until Ctrl-C")
    d.add_argument("--rate", type=float, default=2_000.0)
    return p


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "infra": cmd_infra, "config": cmd_config, "worker": cmd_worker, "relay": cmd_relay,
    "api": cmd_api,
    "replay": cmd_replay, "simulate": cmd_simulate, "demo": cmd_demo, "reset": cmd_reset,
    "tail": cmd_tail, "backtest": cmd_backtest,
}


def _servers_needed(args: argparse.Namespace) -> tuple[str, ...]:
    """Settings fields naming the servers ``args.command`` talks to."""
    live_sim = args.command == "simulate" and not args.out
    kafka = args.command in ("worker", "relay", "api", "replay", "tail") or live_sim
    redis = (args.command in ("worker", "relay", "api", "reset")
             or (args.command == "replay" and args.wait))
    return (("broker",) if kafka else ()) + (("redis_url",) if redis else ())


#: Each server a command may need: how a person calls it.
SERVER_NAMES = {"broker": "Kafka broker", "redis_url": "Redis"}


def missing_server(settings: Settings, args: argparse.Namespace) -> str | None:
    """Why ``args.command`` cannot run for want of a server, and the remedy; None if it can."""
    for name in _servers_needed(args):
        if getattr(settings, name) is None:
            var = next(v for v, f in ENV_FIELDS.items() if f == name)
            return (f"no {SERVER_NAMES[name]} to use: start `shopstream infra` (commands run "
                    f"here find it through {infra_state_path(settings.state_dir)}), or set {var}")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "web_port", None) is not None:
        overrides["worker_web_port"] = args.web_port or free_port()
    if getattr(args, "metrics_port", None) is not None:
        overrides["relay_web_port"] = args.metrics_port
    if getattr(args, "host", None):
        overrides["api_host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["api_port"] = args.port or free_port()
    try:
        settings = load_settings(config_path=args.config, **overrides)
        logs.setup(settings.log_level)
        if (missing := missing_server(settings, args)) is not None:
            print(f"shopstream {args.command}: {missing}", file=sys.stderr)
            return EXIT_CONFIG
        return COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        print(f"shopstream {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ShopstreamError as exc:
        print(f"shopstream {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
