"""Where a step point's time goes: timestamps along one point's path, median per stage.

    python benchmarks/step_breakdown.py                       # full frame, bslz4, 100 points
    python benchmarks/step_breakdown.py --width 128 --port Speed --num 400
    python benchmarks/step_breakdown.py --compression none

Wraps the library's own methods (private ones: this is a measuring tool, not an API)
with a timestamp before and/or after, runs ``count([cam], num)`` at 1 ms exposure, and
prints, per stage, the median (and worst) time from the point's trigger:

trigger (the RunEngine calls trigger) -> sdk_trigger (the owner thread triggers) ->
frame_in (the owner polls the frame) -> submitted (queued for the writer) ->
chunk (compressed) -> write (stored in HDF5) -> row (the point's mean and max, on the
compression helper beside the write when there is one) -> flush (SWMR flush of frame and
records) -> finished (the point's Datum, statistics, status) -> event (the RunEngine
emitted the event) -> the next trigger.

Also the process's CPU and voluntary context switches (all threads) per point.  The
first 5 points are left out (staging, first touches).
"""

from __future__ import annotations

import argparse
import functools
import glob
import itertools
import statistics
import time
from typing import Any

import _common as common

STAGES = (
    "trigger", "sdk_trigger", "frame_in", "submitted", "chunk0", "chunk1", "write0", "write1",
    "row0", "row1", "flush0", "flush1", "finished", "event",
)  # fmt: skip


def _context_switches() -> int:
    total = 0
    for path in glob.glob("/proc/self/task/*/status"):
        try:
            with open(path) as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:  # a thread that ended meanwhile
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--port", default="Sensitivity")
    parser.add_argument("--compression", default="bslz4")
    parser.add_argument("--num", type=int, default=100)
    args = parser.parse_args()

    import bluesky.plans as bp

    from ophyd_pvcam.acquisition import _session, _step
    from ophyd_pvcam.hardware import _pyvcam
    from ophyd_pvcam.storage import _writer

    marks: list[tuple[float, str]] = []

    def wrap(owner: Any, attr: str, before: str | None, after: str | None) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*a: Any, **k: Any) -> Any:
            if before:
                marks.append((time.perf_counter(), before))
            try:
                return original(*a, **k)
            finally:
                if after:
                    marks.append((time.perf_counter(), after))

        setattr(owner, attr, timed)

    wrap(_step.StepSession, "trigger", "trigger", None)
    wrap(_pyvcam.PyvcamBackend, "trigger", "sdk_trigger", None)
    wrap(_session.Session, "frame", "frame_in", "submitted")
    wrap(_writer.FrameFile, "chunk", "chunk0", "chunk1")
    wrap(_writer.FrameFile, "write", "write0", "write1")
    wrap(_step.StepSession, "_row_written", "row0", "row1")
    wrap(_writer.FrameWriter, "_flush", "flush0", "flush1")
    finish = _step.StepSession._finish_point

    def finish_point(session: Any, point: Any, error: Any) -> None:
        finishing = session._pending is point  # not a call that finds it already done
        finish(session, point, error)
        if finishing:
            marks.append((time.perf_counter(), "finished"))

    _step.StepSession._finish_point = finish_point  # type: ignore[method-assign]

    width = args.width
    common.settle_writeback()
    common.recycle_page_cache(args.num * width * width * 2)
    with common.scratch_dir("step-breakdown") as folder:
        cam = common.new_device(folder)
        try:
            cam.compression.set(args.compression).wait(5)
            cam.readout_port.set(args.port).wait(5)
            cam.roi.set((0, 0, width, width)).wait(5)
            cam.exposure_time.set(1e-3).wait(5)
            engine = common.run_engine()
            engine.subscribe(
                lambda name, doc: (
                    marks.append((time.perf_counter(), "event")) if name == "event" else None
                )
            )
            switches, cpu = _context_switches(), time.process_time()
            engine(bp.count([cam], num=args.num))
            switches = (_context_switches() - switches) / args.num
            cpu = (time.process_time() - cpu) / args.num
            readout = float(cam.readout_time.get())
        finally:
            cam.close()

    # each stage is matched to its first mark after the stage before it in STAGES (the
    # writer also flushes on its own every 0.5 s: such a flush is not the point's); the
    # row's statistics run beside the write, so they are matched after write0
    chain = [stage for stage in STAGES if stage not in ("row0", "row1")]
    traces: list[list[tuple[float, str]]] = []
    for when, stage in marks:
        if stage == "trigger":
            traces.append([])
        if traces:
            traces[-1].append((when, stage))
    points: list[dict[str, float]] = []
    for trace in traces:
        point: dict[str, float] = {}
        at = -1.0
        for stage in chain:
            found = next((w for w, s in trace if s == stage and w >= at), None)
            if found is None:
                continue
            point[stage] = at = found
        if "write0" in point:
            for stage in ("row0", "row1"):
                found = next((w for w, s in trace if s == stage and w >= point["write0"]), None)
                if found is not None:
                    point[stage] = found
        points.append(point)
    points = points[5:-1]
    print(
        f"{width}x{width} port {args.port}, {args.compression}: exposure 1 ms + readout "
        f"{readout * 1e3:.2f} ms; {len(points)} points"
    )
    print(f"  {'stage':<12} {'ms after trigger (median)':>26} {'step':>7} {'worst':>8}")
    since = {
        stage: statistics.median(p[stage] - p["trigger"] for p in points if stage in p)
        for stage in STAGES
        if any(stage in p for p in points)
    }
    before = 0.0
    for stage, at in sorted(since.items(), key=lambda item: item[1]):
        worst = max(p[stage] - p["trigger"] for p in points if stage in p)
        print(f"  {stage:<12} {at * 1e3:26.3f} {(at - before) * 1e3:7.3f} {worst * 1e3:8.2f}")
        before = at
    after = [b["trigger"] - a["event"] for a, b in itertools.pairwise(points) if "event" in a]
    periods = [b["trigger"] - a["trigger"] for a, b in itertools.pairwise(points)]
    print(f"  {'event':>11} -> next trigger median {statistics.median(after) * 1e3:7.3f} ms")
    print(
        f"period median {statistics.median(periods) * 1e3:.2f} ms; CPU {cpu * 1e3:.2f} ms "
        f"and {switches:.1f} voluntary context switches per point (all threads)"
    )


if __name__ == "__main__":
    main()
