"""Debian's real Prometheus with the shipped rules, scraping a running worker and API: the
shopstream series arrive, and a flash sale that sells out fires ShopstreamFlashSaleSoldOut."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from shopstream.sinks.flash_sale.store import FlashSales, SaleSpec
from shopstream.sinks.redis_state import make_redis
from tests.shopstream.test_api_events import start_api
from tests.support import new_port, run_async, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.integration,
    # Skipped only on a developer machine without it; CI (make test as root) installs it.
    pytest.mark.skipif(shutil.which("prometheus") is None and not os.environ.get("CI"),
                       reason="prometheus: make tools"),
]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


async def _sell_out(settings, sale_id: str, stock: int) -> None:
    r = make_redis(settings)
    sales = FlashSales(r, settings.app_id)
    now = int(time.time() * 1000)
    spec = SaleSpec(sale_id, "phone-x", stock, 1, now - 1_000, now + 3_600_000, 600, (50,))
    assert await sales.create(spec)
    results = [await sales.claim(sale_id, f"u{i}", 1, now) for i in range(stock)]
    assert [x.result for x in results] == ["ok"] * stock
    await r.aclose()


def test_prometheus_scrapes_shopstream_and_fires_sold_out(settings, spawn, start_worker,
                                                          tmp_path):
    relay_port = new_port()
    worker = start_worker(settings, SHOPSTREAM_RELAY_WEB_PORT=str(relay_port))
    worker_port = worker.args[worker.args.index("--web-port") + 1]
    api_port = start_api(settings, spawn)
    prom_port = new_port()
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ROOT / "monitoring" / "alerts.yml")]
    config.pop("alerting")
    config["scrape_configs"] = [
        {"job_name": "shopstream-api", "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}]},
        {"job_name": "shopstream-worker",
         "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
        {"job_name": "shopstream-relay",
         "static_configs": [{"targets": [f"127.0.0.1:{relay_port}"]}]},
    ]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    prom = subprocess.Popen(["prometheus", f"--config.file={path}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        def jobs() -> set[str]:
            try:
                q = urllib.parse.quote("shopstream_build_info")
                rows = _get(f"{base}/query?query={q}")["data"]["result"]
            except OSError:
                return set()
            return {row["metric"]["job"] for row in rows}

        wait_until(lambda: jobs() == {"shopstream-api", "shopstream-worker",
                                      "shopstream-relay"}, 60,
                   "the shopstream jobs scraped (the worker's relay process too)")
        run_async(_sell_out(settings, "promsale", 3))

        def sold_out() -> list[dict]:
            alerts = _get(f"{base}/alerts")["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "ShopstreamFlashSaleSoldOut"
                    and a["labels"].get("sale") == "promsale" and a["state"] == "firing"]

        firing = wait_until(sold_out, 60, "the sold-out alert firing")
        assert firing[0]["labels"]["severity"] == "info"
    finally:
        prom.terminate()
        prom.wait(20)
        log.close()
