"""The stress benchmark runs end to end (small) and its last line has the promised format."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "store_stress.py"
LAST = re.compile(r"store stress: writers=(\d+) rows=(\d+) expected=(\d+) found=(\d+) errors=(\d+) rows_per_s=(\d+)")


def test_stress_benchmark_small(store_url: str) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--store", store_url, "--writers", "3", "--rows", "40",
                          "--start-method", "fork"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    match = LAST.fullmatch(last)
    assert match, last
    writers, rows, expected, found, errors, rate = map(int, match.groups())
    assert (writers, rows, expected, found, errors) == (3, 120, 120, 120, 0)
    assert rate > 0


def test_stress_benchmark_bad_store_is_one_line() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--store", "mysql://u:pw@h/db", "--writers", "1",
                          "--rows", "1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "store stress: unsupported store URL 'mysql://u:***@h/db': the store runs on SQLite or PostgreSQL; "
        "expected sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/DATABASE"]
