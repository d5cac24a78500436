"""The layers contract holds on the tree, and fails, naming the import, on a wrong-way one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["shopstream", "streams", "agents", "sinks", "kafka_io", "monitoring", "schemas", "core"]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(lint), "--no-cache"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in LAYERS:
        shutil.copytree(ROOT / name, tree / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def test_layers_contract_is_kept_by_the_tree(tmp_path):
    result = _lint_imports(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_wrong_way_import_breaks_the_contract_and_is_named(tmp_path):
    tree = _copy(tmp_path)
    (tree / "core" / "upward.py").write_text(
        '"""A core module reaching up into the worker."""\n\n'
        "from shopstream.streams.dedup import Deduplicator\n\n__all__ = [\"Deduplicator\"]\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "shopstream.core.upward -> shopstream.streams.dedup" in result.stdout


#: (module file, injected import, the import lint-imports must name): a capability's rules
#: reaching another's, its keys reaching another's keys, a capability reading the anomaly judge.
CROSS_IMPORTS = [
    ("agents/funnel/rules.py", "from shopstream.agents.coupons.rules import RULES",
     "shopstream.agents.funnel.rules -> shopstream.agents.coupons.rules"),
    ("sinks/live/keys.py", "from shopstream.sinks.funnel.keys import VIEWS",
     "shopstream.sinks.live.keys -> shopstream.sinks.funnel.keys"),
    ("agents/ops/query.py", "from shopstream.agents.anomalies.rules import AnomalyConfig",
     "shopstream.agents.ops.query -> shopstream.agents.anomalies.rules"),
]


@pytest.mark.parametrize(("module", "line", "named"), CROSS_IMPORTS)
def test_a_cross_capability_import_breaks_a_contract_and_is_named(tmp_path, module, line, named):
    tree = _copy(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert named in result.stdout
