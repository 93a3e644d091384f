"""The throughput benchmark runs and ends with the line format the issue asks for."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "extract_throughput.py"


def test_extract_throughput_last_line_format():
    out = subprocess.run([sys.executable, str(SCRIPT), "--n", "6", "--repeats", "1"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(r"extract_ratio=(\d+\.\d+) cache_speedup=(\d+\.\d+)", last)
    assert match, last
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0
