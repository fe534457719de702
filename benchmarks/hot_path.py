"""Where the time goes: a sampling profile of the fly-scan and step-scan hot paths.

``python benchmarks/hot_path.py`` profiles each case in a child process with
py-spy (``pip install py-spy``) when it is installed, sampling every Python
thread without pausing the process; without py-spy it falls back to cProfile
started in every thread (slower, and it distorts per-call costs more).

Cases: a small-ROI fly scan (per-frame overhead), a full-frame fly scan
(bytes) and a full-frame step scan (per-point work).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as common
import step_scan
import throughput

TOP = 15
SAMPLE_RATE_HZ = 200


def _cases(quick: bool) -> dict[str, Callable[[], Any]]:
    """The workloads, each a function that runs one acquisition on a fresh device."""
    small = throughput.Point("128x128", 128, 128, 1e-6, 2000 if quick else 20000)
    full = throughput.Point("2048x2048", 2048, 2048, 1e-6, 20 if quick else 300)

    def fly(point: throughput.Point) -> Callable[[], Any]:
        def work() -> Any:
            with common.scratch_dir("profile") as folder:
                return throughput.measure_device(point, folder)

        return work

    return {
        "fly_128x128": fly(small),
        "fly_2048x2048": fly(full),
        "step_2048x2048": lambda: step_scan.measure_camera(
            step_scan.CASES[0], 10 if quick else 100
        ),
    }


# ---- py-spy ------------------------------------------------------------------------

_IMPORTING = "_find_and_load"
_THREAD = re.compile(r"^thread \(\d+\): ?(?P<name>[^;]*)")
_LINE = re.compile(r" \((?P<file>[^:()]+):\d+\)$")


def _frame_name(frame: str) -> str:
    """``function (file:line)`` -> ``function (file)``: aggregate by function."""
    return _LINE.sub(r" (\g<file>)", frame)


def parse_collapsed(lines: list[str]) -> dict[str, Any]:
    """Shares of samples: per function (own and inclusive), per line of ophyd_pvcam
    (the innermost one on the stack), per thread.  Samples of the benchmark's own
    sampler thread and of imports (start-up) are counted apart."""
    counters = _counters()
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        thread = match.group("name") if match else frames[0]
        frames = frames[1:]
        if thread == common.SAMPLER_THREAD:
            counters["excluded"]["benchmark sampler thread"] += count
        elif any(frame.startswith(_IMPORTING) for frame in frames):
            counters["excluded"]["imports"] += count
        else:
            _count_sample(counters, thread, frames, count)
    return _shares(counters)


def _counters() -> dict[str, Counter[str]]:
    return {key: Counter() for key in ("self", "inclusive", "threads", "lines", "excluded")}


def _count_sample(
    counters: dict[str, Counter[str]], thread: str, frames: list[str], count: int
) -> None:
    counters["threads"][common._thread_role(thread or None)] += count
    if not frames:
        return
    counters["self"][_frame_name(frames[-1])] += count
    for name in {_frame_name(frame) for frame in frames}:
        counters["inclusive"][name] += count
    ours = [frame for frame in frames if "ophyd_pvcam" in frame]
    if ours:
        counters["lines"][ours[-1]] += count


def _shares(counters: dict[str, Counter[str]]) -> dict[str, Any]:
    total = sum(counters["threads"].values()) or 1

    def top(counter: Counter, keep: Callable[[str], bool] = lambda _: True) -> list:
        rows = [(name, 100.0 * n / total) for name, n in counter.most_common() if keep(name)]
        return [[name, round(share, 1)] for name, share in rows[:TOP]]

    return {
        "samples": total,
        "excluded_samples": dict(counters["excluded"]),
        "threads_pct": {k: round(100.0 * v / total, 1) for k, v in counters["threads"].items()},
        "self_pct": top(counters["self"]),
        "inclusive_pct": top(
            counters["inclusive"], lambda name: not name.startswith(("Thread.", "<module>"))
        ),
        "ophyd_pvcam_lines_pct": top(counters["lines"]),
    }


def profile_with_py_spy(case: str, quick: bool, py_spy: str) -> dict[str, Any]:
    """Run one case in a child Python under ``py-spy record`` and read its samples."""
    with tempfile.TemporaryDirectory() as folder:
        raw, result = Path(folder) / "samples.txt", Path(folder) / "result.json"
        command = [
            py_spy,
            "record",
            "--nonblocking",
            "--threads",
            "--rate",
            str(SAMPLE_RATE_HZ),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            case,
        ]
        if quick:
            command.append("--quick")
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not raw.exists():
            raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr[-2000:]}")
        profile = parse_collapsed(raw.read_text().splitlines())
        profile["run"] = json.loads(result.read_text()) if result.exists() else None
    return profile


# ---- cProfile, in every thread ------------------------------------------------------


def _profile_all_threads(work: Callable[[], Any]) -> tuple[Any, pstats.Stats]:
    """cProfile for the calling thread and every thread started meanwhile."""
    profilers: list[cProfile.Profile] = []

    def start_in_thread(*_: Any) -> None:
        sys.setprofile(None)
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.enable()

    main = cProfile.Profile()
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        result = work()
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    stats = pstats.Stats(main)
    for profiler in profilers:
        stats.add(profiler)
    return result, stats


def profile_with_cprofile(case: str, quick: bool) -> dict[str, Any]:
    """The fallback: cProfile's own (tottime) and cumulative times as shares
    (no breakdown by thread)."""
    result, stats = _profile_all_threads(_cases(quick)[case])
    counters = _counters()
    for (filename, line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        name = f"{function} ({Path(filename).name})"
        counters["self"][name] += round(entry[2] * 1e6)
        counters["inclusive"][name] = max(counters["inclusive"][name], round(entry[3] * 1e6))
        if "ophyd_pvcam" in filename:
            counters["lines"][f"{function} ({Path(filename).name}:{line})"] += round(entry[2] * 1e6)
    counters["threads"]["all threads"] = sum(counters["self"].values())
    profile = _shares(counters)
    profile["run"] = result
    return profile


def run(quick: bool, cases: list[str] | None = None) -> dict[str, Any]:
    """Profile the chosen cases (all by default) with the best tool available."""
    py_spy = shutil.which("py-spy")
    found: dict[str, Any] = {"tool": "py-spy" if py_spy else "cProfile", "cases": {}}
    for case in cases or list(_cases(quick)):
        common.settle_writeback()
        if py_spy:
            found["cases"][case] = profile_with_py_spy(case, quick, py_spy)
        else:
            found["cases"][case] = profile_with_cprofile(case, quick)
    return found


def report(found: dict[str, Any]) -> str:
    """The profile as text: per case, thread shares and the top functions."""
    lines = [f"Hot path profile ({found['tool']}; % of samples of active Python threads)"]
    for case, profile in found["cases"].items():
        lines.append(
            f"\n[{case}] {profile['samples']} samples (left out: {profile['excluded_samples']}); "
            f"threads: {profile['threads_pct']}"
        )
        for title, key in (
            ("own time, by function", "self_pct"),
            ("ophyd_pvcam line innermost on the stack", "ophyd_pvcam_lines_pct"),
            ("inclusive, by function", "inclusive_pct"),
        ):
            lines.append(f"  {title}:")
            lines += [f"    {share:5.1f}%  {name}" for name, share in profile[key]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--case", action="append", help="profile only this case (repeatable)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    common.quiet_logging()
    if args.child:  # inside py-spy: run the workload, keep its figures
        result = _cases(args.quick)[args.child]()
        Path(args.result).write_text(json.dumps(common.rounded(result), default=str))
        return 0
    found = run(args.quick, args.case)
    print(report(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
