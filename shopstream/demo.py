"""``shopstream demo``: embedded infra, a worker, the API and live simulated traffic."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from dataclasses import replace
from pathlib import Path

import redis

from shopstream.core.settings import Settings, mask_url
from shopstream.demo_flash_sale import SALES as FLASH_SALES
from shopstream.demo_flash_sale import FlashShoppers
from shopstream.infra import embedded, free_port
from shopstream.kafka_io.topics import ensure_topics
from shopstream.simulate import Incident, run_simulation
from shopstream.simulate_customers import CustomerPlan
from shopstream.simulate_money import MoneyPlan
from shopstream.sinks import keys


def _processed(settings: Settings) -> int:
    r = redis.Redis.from_url(str(settings.redis_url))
    try:
        return sum(
            int(r.hget(keys.counts(settings.app_id, p), "in") or 0)
            for p in range(settings.partitions)
        )
    finally:
        r.close()


def _spawn(settings: Settings, config: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SHOPSTREAM_CONFIG": config, "SHOPSTREAM_BROKER": str(settings.broker),
           "SHOPSTREAM_REDIS_URL": str(settings.redis_url), "SHOPSTREAM_AGENTS": settings.agents,
           "SHOPSTREAM_STATE_DIR": settings.state_dir}
    return subprocess.Popen([sys.executable, "-m", "shopstream", *args], env=env)


#: Minutes into the demo when payments start failing (for 10 minutes): an anomaly fires.
DEMO_INCIDENT_MIN = 15
#: Simulated shoppers (the simulator's and the flash sales' user ids share this range).
DEMO_USERS = 20_000
#: The money view's alerts within the demo's first minutes: a campaign's ROAS falls under 3
#: five minutes in, returns come back within minutes of the payment.
DEMO_MONEY = MoneyPlan(roas_drop_min=5.0, return_after_min=(0.5, 3.0))
#: The money view's and the customer loop's capabilities, opt-in elsewhere (their cost:
#: docs/performance.md), on here.
DEMO_AGENTS = ("traffic", "ads", "stock", "customers", "group_buys")
#: The customer loop on the clock of ``DEMO_CONFIG``'s compressed durations: reviews within
#: 3 minutes of the payment (the reminder comes after 4), service tasks acked within their
#: 3 minutes or not, an invitee every 30 s paying within 2 minutes, a group of three every
#: 30 s with a 5-minute window, SKUs bought again after their 6- or 8-minute cycle.
DEMO_CUSTOMERS = CustomerPlan(
    review_after_min=(0.5, 3.0), ack_min=3.0, check_in_after_min=(0.0, 1.0),
    referral_every_min=0.5, invitee_pay_after_min=(0.5, 2.0), group_every_min=0.5,
    group_window_min=5.0, cycles_min=(("sku9", 6.0), ("sku35*", 8.0)),
    refund_after_min=(0.5, 5.0), redeem_after_min=(0.5, 5.0))


def with_demo_agents(agents: str) -> str:
    """``agents`` with the demo's opt-in capabilities added (each once)."""
    names = [a.strip() for a in agents.split(",") if a.strip()]
    return ",".join(names + [a for a in DEMO_AGENTS if a not in names])
#: The demo's settings file when none is given: anomalies judged after 10 minutes of history
#: (production default: 30 of 60), SKUs judged low or overstocked after 10 minutes (default 60),
#: return rates once 40 units sold (default 20: at the demo's pace a SKU sells ~5 a minute, and
#: a few returns among 20 units would look like a faulty batch). The customer loop's days are
#: minutes (``DEMO_CUSTOMERS`` follows them), so every nudge, a tier change (spend leaves the
#: window after 15 minutes), group completions and expiries and service escalations show within
#: 20 minutes; no quiet night (the demo runs on the wall clock, at any hour) and a daily cap
#: that a compressed day cannot exhaust.
DEMO_CONFIG = """\
[anomalies]
window = 30
min_history = 10

[stock]
min_history_min = 10
return_min_sold = 40

[coupons]
quiet_hours = "00:00-00:00"

[customers]
spend_min = 15
daily_cap = 50

[customers.review_reminder]
after_min = 4

[customers.repurchase_reminder]
lead_min = 2
cycles_min = { sku9 = 6, "sku35*" = 8 }

[customers.dormant_recall]
minutes = 6

[customers.service]
ack_min = 3

[group_buys]
target = 3
window_min = 5
"""


def _open_dashboard(host: str, port: int) -> None:
    """Open the dashboard once the API listens, in a graphical browser only.

    Only for a person at a terminal (not a test or a log), and never a console browser
    (lynx, w3m), which would take the terminal over from the demo's own output.
    """
    if not sys.stdout.isatty():
        return
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return
    if type(browser) is webbrowser.GenericBrowser:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    browser.open(f"http://{host}:{port}/")


def _stop_all(stop: threading.Event, traffic: list[threading.Thread],
              children: list[subprocess.Popen[bytes]]) -> None:
    """Traffic first (its producer flushed), then worker and API, all before the infra stops,
    so no client is left talking to a stopped broker."""
    stop.set()
    print("demo: stopping", flush=True)
    for thread in traffic:
        thread.join(15)
    for child in children:
        child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def run_demo(settings: Settings, duration_s: float = 0.0, rate: float = 2_000.0,
             config_path: str | None = None) -> int:
    """Runs until Ctrl-C (or ``duration_s``); every child is stopped on the way out. The
    worker and the API read ``config_path``, else the demo's own file (``DEMO_CONFIG``)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with embedded(settings.state_dir) as infra:
        if config_path is None:
            demo_file = Path(settings.state_dir) / "demo.toml"
            demo_file.write_text(DEMO_CONFIG)
            config_path = str(demo_file)
        s = replace(settings, broker=infra.broker, redis_url=infra.redis_url,
                    agents=with_demo_agents(settings.agents))
        ensure_topics(s)
        api_port = s.api_port if s.api_port else free_port()
        children = [
            _spawn(s, config_path, "worker", "--web-port", str(s.worker_web_port)),
            _spawn(s, config_path, "api", "--port", str(api_port)),
        ]
        api = f"http://{s.api_host}:{api_port}"
        traffic = [
            threading.Thread(target=run_simulation, daemon=True, kwargs={
                "settings": s, "users": DEMO_USERS, "rate": rate,
                "duration_s": duration_s or 86_400.0, "seed": 1, "stop": stop,
                "incidents": (Incident("payment-failures", DEMO_INCIDENT_MIN),),
                "money": DEMO_MONEY, "customers": DEMO_CUSTOMERS}),
            threading.Thread(target=FlashShoppers(s, s.api_host, api_port, DEMO_USERS, stop).run,
                             daemon=True),
        ]
        for thread in traffic:
            thread.start()
        threading.Thread(target=_open_dashboard, args=(s.api_host, api_port), daemon=True).start()
        print(f"""
shopstream demo is running
  dashboard {api}/
  broker    {infra.broker}
  redis     {mask_url(infra.redis_url)}
  api       {api}/v1/stats   {api}/metrics
  live      {api}/v1/live/rooms   {api}/v1/ops/summary?by=channel
  flash     {api}/v1/flash-sales   ({len(FLASH_SALES)} sales, shoppers claiming through the API)
  incident  payments start failing {DEMO_INCIDENT_MIN} minutes in: {api}/v1/ops/anomalies
  customers {api}/v1/customers/tiers   {api}/v1/tasks   {api}/v1/group-buys
  worker    http://127.0.0.1:{s.worker_web_port}/metrics  /healthz
Ctrl-C stops everything.
""", flush=True)
        started = time.monotonic()
        try:
            while not stop.wait(5.0):
                infra.supervise()
                elapsed = time.monotonic() - started
                print(f"demo: {elapsed:5.0f}s  events in state: {_processed(s):,}", flush=True)
                if duration_s and elapsed >= duration_s:
                    break
        finally:
            _stop_all(stop, traffic, children)
    print("demo: stopped; broker and redis-server are down", flush=True)
    return 0
