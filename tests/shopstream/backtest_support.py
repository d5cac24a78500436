"""Backtest tests' helpers: settings files, simulated logs, the command as a subprocess, and a
loopback receiver that records every request it gets."""

from __future__ import annotations

import heapq
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from shopstream.backtest_config import settings_toml
from shopstream.core.settings import Settings
from shopstream.simulate import Simulator
from tests.support import ROOT, new_port, users_by_partition

#: A webhook secret for the configs (any string of >= 16 characters).
SECRET = "backtest-secret-0123456789"


def write_config(path: Path, sections: dict[str, Any], **fields: Any) -> str:
    """A settings file with these top-level fields and tables (written as the backtest
    writes its workers' files, so it reads back as given)."""
    path.write_text(settings_toml(Settings(**fields, sections=sections)))
    return str(path)


def simulated(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of several simulator runs (kwargs of ``Simulator`` plus ``count``), merged in
    event-time order (stable: a run's own order kept at equal times)."""
    runs = [Simulator(**{k: v for k, v in seg.items() if k != "count"}).events(seg["count"])
            for seg in segments]
    return list(heapq.merge(*runs, key=lambda e: e["ts"]))


def with_clocks(events: list[dict[str, Any]], partitions: int, at: int) -> list[dict[str, Any]]:
    """``events`` and one page view per partition at ``at``: every partition's watermark ends
    there, so the timers due by then fire in every partition."""
    return events + [{"event_id": f"clock-{p}", "type": "page_view", "ts": at, "user_id": user,
                      "page": "home"}
                     for p, user in enumerate(users_by_partition(partitions, "clock"))]


def write_log(path: Path, events: list[dict[str, Any]], extra: list[bytes] = ()) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events) + b"".join(
        line + b"\n" for line in extra))
    return str(path)


def backtest(log: str, configs: list[str], out: Path, *extra: str,
             timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """``shopstream backtest`` in a subprocess, with no shopstream variable in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, "-m", "shopstream", "backtest", log, "--out", str(out), *extra]
    for c in configs:
        args += ["--config", c]
    return subprocess.run(args, env=env, cwd=out.parent, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def report(out: Path) -> dict[str, Any]:
    return orjson.loads((out / "report.json").read_bytes())


def pushes_file(out: Path, label: str) -> list[dict[str, Any]]:
    lines = (out / f"pushes-{label}.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


class Receiver(ThreadingHTTPServer):
    """Answers 200 to every POST on loopback and keeps (path, headers, JSON body) of each."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", new_port()), _Handler)
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [body for p, _, body in self.requests if p == path]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests.append((self.path, dict(self.headers.items()),
                                         orjson.loads(body) if body else None))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None
