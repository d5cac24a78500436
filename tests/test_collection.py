"""Every collected test has its own node id: `make test` runs the suite with pytest-xdist,
which sends tests to its processes by id and would run only the first of several sharing one."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from tests.support import ROOT


def test_every_collected_test_has_its_own_id():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ids = Counter(line for line in out.stdout.splitlines() if "::" in line)
    assert sum(ids.values()) > 400
    assert [nodeid for nodeid, n in ids.items() if n > 1] == []
