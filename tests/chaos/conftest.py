"""The fault suite: each case injects one fault into a real broker, redis-server and worker,
ends with the state equal to its reference, and adds a row to the table printed at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from shopstream.infra import start_broker, start_redis, stop
from tests.support import FAULT_ROW, Infra, stop_broker, wait_until


@dataclass
class FaultRow:
    fault: str
    events: int = 0
    checks: list[str] = field(default_factory=list)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_OUTCOME] = report.outcome


_OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def fault_row(request: pytest.FixtureRequest) -> Iterator[FaultRow]:
    row = FaultRow(request.node.name)
    yield row
    result = request.node.stash.get(_OUTCOME, "error")
    # The row travels with the teardown report (tests/conftest.py prints the table), so a run
    # split over processes prints it too.
    request.node.user_properties.append(
        (FAULT_ROW, (row.fault, f"{row.events:,}", "; ".join(row.checks), result)))


@dataclass
class OwnInfra:
    """A broker and a redis-server of this test alone, so it may kill, pause or roll them back."""

    dir: Path
    broker_proc: object
    broker: str
    redis_port: int
    redis_proc: object = None
    appendonly: bool = False

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_redis(self) -> None:
        """Start redis-server and wait until it has loaded its AOF or snapshot: until then it
        answers the test's own reads with LOADING."""
        self.redis_proc, _ = start_redis(self.redis_port, self.dir / "redis", self.appendonly)
        client = redis.Redis.from_url(self.redis_url)
        try:
            wait_until(lambda: client.info("persistence")["loading"] == 0, 60, "redis loaded")
        finally:
            client.close()

    def kill_redis(self) -> None:
        self.redis_proc.kill()  # type: ignore[attr-defined]
        self.redis_proc.wait(10)  # type: ignore[attr-defined]

    def infra(self) -> Infra:
        return Infra(self.broker, self.redis_url)


@pytest.fixture
def own_infra(tmp_path: Path) -> Iterator[Callable[..., OwnInfra]]:
    made: list[OwnInfra] = []

    def _make(appendonly: bool = False) -> OwnInfra:
        from shopstream.infra import free_port

        proc, broker = start_broker(log_path=tmp_path / "tansu.log")
        own = OwnInfra(tmp_path, proc, broker, free_port(), appendonly=appendonly)
        own.start_redis()
        made.append(own)
        return own

    yield _make
    for own in made:
        if own.redis_proc is not None:
            stop(own.redis_proc)  # type: ignore[arg-type]
        stop_broker(own.broker_proc)  # type: ignore[arg-type]
