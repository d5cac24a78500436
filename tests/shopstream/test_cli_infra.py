"""`shopstream infra` and the commands that find it: the Redis password is never printed,
`config` says what will really be used, `reset` without infra names the remedy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT, wait_until

pytestmark = [pytest.mark.integration]


def clean_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    return {**env, "SHOPSTREAM_STATE_DIR": str(state_dir), "PYTHONPATH": str(ROOT)}


def shopstream(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shopstream", *args], cwd=ROOT,
                          env=clean_env(state_dir), capture_output=True, text=True, timeout=60)


@dataclass
class RunningInfra:
    state_dir: Path
    broker: str
    redis_url: str
    password: str
    output: str


@pytest.fixture(scope="module")
def running_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningInfra]:
    state_dir = tmp_path_factory.mktemp("infra-cli") / "state"
    log = state_dir.parent / "infra.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "shopstream", "infra"], cwd=ROOT,
                                env=clean_env(state_dir), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "Ctrl-C stops both" in log.read_text(), 60, "infra up")
        state = json.loads((state_dir / "infra.json").read_text())
        password = state["redis_url"].split("://:", 1)[1].split("@", 1)[0]
        assert len(password) >= 16
        yield RunningInfra(state_dir, state["broker"], state["redis_url"], password,
                           log.read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_infra_prints_urls_without_the_redis_password(running_infra):
    out = running_infra.output
    assert running_infra.password not in out
    masked = running_infra.redis_url.replace(running_infra.password, "***")
    assert f"redis:  {masked}" in out
    assert f"export SHOPSTREAM_BROKER={running_infra.broker}" in out
    export = next(ln for ln in out.splitlines() if ln.startswith("export SHOPSTREAM_REDIS_URL="))
    got = subprocess.run(["bash", "-c", f'{export}; printf %s "$SHOPSTREAM_REDIS_URL"'],
                         capture_output=True, text=True, timeout=30)
    assert got.stdout == running_infra.redis_url, got.stderr


def test_config_says_the_embedded_infra_it_found(running_infra):
    out = shopstream(running_infra.state_dir, "config")
    assert out.returncode == 0, out.stderr
    assert running_infra.password not in out.stdout + out.stderr
    shown = json.loads(out.stdout)
    where = str(running_infra.state_dir / "infra.json")
    masked = running_infra.redis_url.replace(running_infra.password, "***")
    assert shown["broker"] == f"embedded (from {where}: {running_infra.broker})"
    assert shown["redis_url"] == f"embedded (from {where}: {masked})"


def test_reset_lists_keys_without_the_redis_password(running_infra):
    out = shopstream(running_infra.state_dir, "reset")
    assert out.returncode == 2, out.stderr
    assert running_infra.password not in out.stdout + out.stderr
    assert running_infra.redis_url.replace(running_infra.password, "***") in out.stdout


def test_config_without_infra_says_embedded_not_running(tmp_path):
    out = shopstream(tmp_path, "config")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["broker"] == "embedded, not running (start `shopstream infra`)"
    assert shown["redis_url"] == "embedded, not running (start `shopstream infra`)"


@pytest.mark.parametrize(("command", "names"), [
    (("reset",), "Redis"),
    (("tail", "alerts"), "Kafka broker"),
])
def test_commands_without_infra_name_the_remedy(tmp_path, command, names):
    out = shopstream(tmp_path, *command)
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(f"shopstream {command[0]}: no {names} to use")
    assert "start `shopstream infra`" in lines[0]
    var = "SHOPSTREAM_REDIS_URL" if names == "Redis" else "SHOPSTREAM_BROKER"
    assert f"or set {var}" in lines[0]
