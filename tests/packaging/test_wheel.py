"""The built wheel installs one top-level package and lives beside a module named ``agents``."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True,
                          timeout=300, **kw)  # type: ignore[call-overload]


def test_wheel_installs_under_one_namespace_beside_an_agents_module(tmp_path):
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT)
    wheel = next((tmp_path / "dist").glob("shopstream-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"shopstream"}
    for path in ("shopstream/agents/funnel/agent.py", "shopstream/sinks/apply_batch.lua",
                 "shopstream/sinks/flash_sale/claim.lua", "shopstream/sinks/anomalies/commit.lua",
                 "shopstream/core/settings.py", "shopstream/py.typed",
                 "shopstream/dashboard/index.html", "shopstream/dashboard/app.js",
                 "shopstream/backtest_report.css"):
        assert path in names, path
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Provides-Extra: embedded" in metadata
    assert "License-Expression: Apache-2.0" in metadata

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    fresh = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", fresh, "install", "--no-deps", "-q", wheel)
    # The fresh venv borrows third-party libraries (faust, redis, ...) from this one by path,
    # without this environment's editable shopstream.
    site = _run(fresh, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    Path(site.stdout.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    other = tmp_path / "other"
    other.mkdir()
    (other / "agents.py").write_text("WHO = 'another distribution'\n")
    probe = ("import agents, shopstream, shopstream.agents.funnel.agent, shopstream.streams.app\n"
             "assert agents.WHO == 'another distribution'\n"
             "print(shopstream.__file__)\n")
    out = _run(fresh, "-c", probe, cwd=other, env={"PYTHONPATH": str(other)})
    assert out.stdout.strip().startswith(str(venv))
    version = _run(venv / "bin" / "shopstream", "--version")
    assert version.stdout.startswith("shopstream ")
