"""The benchmark's profile parser, on made-up py-spy samples (the benchmark itself:
``tests/system/test_benchmarks.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_profile_parser_reads_py_spy_samples():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import hot_path
    finally:
        sys.path.remove(str(BENCHMARKS))
    samples = [
        "thread (11): cam-writer;FrameWriter.run (ophyd_pvcam/writer.py:1);"
        "FrameFile.write (ophyd_pvcam/writer.py:2) 3",
        "thread (12): bluesky-run-engine;RunBundler.collect (bluesky/bundlers.py:3) 1",
    ]
    profile = hot_path.parse_collapsed(samples)
    assert profile["samples"] == 4
    assert profile["threads_pct"] == {"writer thread": 75.0, "RunEngine loop": 25.0}
    assert profile["self_pct"][0] == ["FrameFile.write (ophyd_pvcam/writer.py)", 75.0]
