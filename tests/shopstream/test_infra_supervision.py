"""The embedded infra you can leave running: Redis needs its generated password, and a
redis-server killed under ``shopstream infra`` comes back on its port with everything."""

from __future__ import annotations

import os
import signal
import stat

import orjson
import pytest
import redis

from shopstream.core.settings import infra_state_path
from shopstream.infra import InfraError, embedded
from tests.support import wait_until

pytestmark = [pytest.mark.integration]


def test_redis_requires_its_password_and_is_restarted_with_its_data(tmp_path):
    with embedded(str(tmp_path)) as infra:
        state = infra_state_path(str(tmp_path))
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
        assert orjson.loads(state.read_bytes())["redis_url"] == infra.redis_url
        password = infra.redis_url.split("://:", 1)[1].split("@", 1)[0]
        assert password not in repr(infra)
        host_port = infra.redis_url.rsplit("@", 1)[1]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(f"redis://{host_port}").set("k", "v")
        r = redis.Redis.from_url(infra.redis_url)
        r.set("kept", "yes")
        r.hincrby("counter", "n", 41)
        r.close()
        assert not infra.supervise(), "nothing to restart while redis-server runs"
        os.kill(infra.procs[-1].pid, signal.SIGKILL)
        infra.procs[-1].wait(10)
        assert infra.supervise()
        r = redis.Redis.from_url(infra.redis_url)
        wait_until(lambda: _answers(r), 10, "redis-server back")
        assert r.get("kept") == b"yes" and r.hincrby("counter", "n", 1) == 42
        r.close()


def _answers(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.ConnectionError:
        return False


def test_a_broker_past_its_memory_mark_is_reported_once(monkeypatch, caplog):
    import subprocess
    import sys

    from shopstream import infra as infra_module

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wait_until(lambda: infra_module._rss_mb(sleeper.pid) > 2, 10, "a process with memory")
        monkeypatch.setattr(infra_module, "BROKER_WARN_MB", 1)
        running = infra_module.EmbeddedInfra("kafka://x", "redis://x", [sleeper, sleeper])
        with caplog.at_level("WARNING"):
            assert not running.supervise() and not running.supervise()
        warnings = [r for r in caplog.records if "keeps every record" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        sleeper.kill()
        sleeper.wait()


def test_each_run_starts_with_an_empty_redis(tmp_path):
    """The broker keeps nothing across runs, so neither may Redis: no state of an old log."""
    with embedded(str(tmp_path)) as first:
        r = redis.Redis.from_url(first.redis_url)
        r.hset("shopstream:{p0}:fence:shopstream-events", "offset", 6706)
        r.close()
        with pytest.raises(InfraError, match="another shopstream infra"):
            with embedded(str(tmp_path)):
                pass
    with embedded(str(tmp_path)) as second:
        r = redis.Redis.from_url(second.redis_url)
        assert r.dbsize() == 0
        r.close()
