"""Writes docs/backtest-report.png, the README's picture of a report comparing two configs:
a backtest's report.json (or, without one, the tests' sample report) rendered to a file,
opened in headless Chromium, saved full-page.

    PYTHONPATH=. .venv/bin/python tests/browser/report_screenshot.py [REPORT.json [OUT.png]]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from shopstream.backtest_html import render
from tests.shopstream.backtest_sample import report

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "docs" / "backtest-report.png"


def main(source: Path | None = None, out: Path = OUT) -> None:
    shown = report(channel="live") if source is None else json.loads(source.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render(shown), encoding="utf-8")
        subprocess.run(["node", "report.mjs", "--file", str(page), "--out", str(out.resolve()),
                        "--width", "1280"], cwd=HERE, check=True, stdout=subprocess.DEVNULL)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None,
         Path(sys.argv[2]) if len(sys.argv) > 2 else OUT)
