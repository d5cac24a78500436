"""Writes docs/backtest-report.png, the README's picture of a report comparing two configs:
the sample report rendered to a file, opened in headless Chromium, saved full-page.

    PYTHONPATH=. .venv/bin/python tests/browser/report_screenshot.py [OUT.png]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from shopstream.backtest_html import render
from tests.shopstream.backtest_sample import report

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "docs" / "backtest-report.png"


def main(out: Path = OUT) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render(report(channel="live")), encoding="utf-8")
        subprocess.run(["node", "report.mjs", "--file", str(page), "--out", str(out.resolve()),
                        "--width", "1280"], cwd=HERE, check=True, stdout=subprocess.DEVNULL)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
