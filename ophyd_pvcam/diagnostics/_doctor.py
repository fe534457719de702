"""The stall doctor: why does a PVCAM stream stop?  One controlled experiment per cause
reported from the field, and a verdict.

Other teams saw real Prime BSI streams stop and suspected, never confirming one,
several separate causes (DESIGN.md, "Why real PVCAM streams stop").  Each gets an
experiment on the attached camera, driven directly through the SDK (pyvcam would
not do the faulty things), with two arms that differ only in the suspected cause,
so that the outcome differs between "cause present" and "cause absent":

- ``no-unlock``: CIRC_NO_OVERWRITE, the latest frame taken and never unlocked,
  against the oldest frame taken and unlocked, at several buffer sizes
  (``run_strategy`` in the probe).  This is how PVCAM is documented to
  behave, so it is reproduced on every camera: a property of the buffer mode;
- ``param-polling``: one stream with a temperature read every few frames (as a
  background monitor does), one without;
- ``callback-reregistration``: the EOF callback registered twice without
  deregistering, against once;
- ``byte-limit`` and ``frame-limit``: streams of full and quarter-height frames,
  each with a small and a large buffer, long enough to pass both reported limits
  (~85 frames, ~744-780 MB).  A fixed frame count stops all four at the same frame;
  a fixed byte count stops the quarter-height frames four times later.

Every stream counts EOF callbacks (distinct frame numbers), and ends when it
reaches its target or when no frame came for the stall timeout; only the arm that
tests ``param-polling`` makes a parameter call while frames stream.

The experiments are in ``_experiments``, their judging in ``_judging``; this module
holds the hypotheses, the verdict and its text, and is the doctor's one namespace
(``from ophyd_pvcam.diagnostics import _doctor as doctor``: the probe and the tests
call every step through it).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._experiments import (
    NO_UNLOCK,
    OVERWRITE,
    READ_EVERY,
    READ_FROM,
    UNLOCK,
    Run,
    callback_runs,
    control_pair,
    limit_buffers,
    limit_runs,
    param_polling_runs,
    stream,
)
from ._judging import (
    MIB,
    Hypothesis,
    judge_callback,
    judge_limits,
    judge_no_unlock,
    judge_param_polling,
    mib,
)

__all__ = [
    "CLAIMS",
    "HYPOTHESES",
    "MIB",
    "NO_UNLOCK",
    "OVERWRITE",
    "READ_EVERY",
    "READ_FROM",
    "REMEDIES",
    "UNLOCK",
    "Hypothesis",
    "Run",
    "Verdict",
    "callback_runs",
    "control_pair",
    "fly_summary",
    "hypotheses_table",
    "judge_callback",
    "judge_limits",
    "judge_no_unlock",
    "judge_param_polling",
    "limit_buffers",
    "limit_runs",
    "mib",
    "param_polling_runs",
    "stream",
    "verdict",
    "wrap_lines",
]

HYPOTHESES = ("no-unlock", "param-polling", "callback-reregistration", "byte-limit", "frame-limit")
CLAIMS = {
    "no-unlock": "CIRC_NO_OVERWRITE without pl_exp_unlock_oldest_frame halts at the buffer size",
    "param-polling": "a parameter read while frames stream stops them",
    "callback-reregistration": "an EOF callback registered twice without deregistering "
    "stops the callbacks",
    "byte-limit": "frames stop after a fixed number of bytes: the stop moves with the frame size",
    "frame-limit": "frames stop at the same frame whatever the buffer and frame size",
}
REMEDIES = {
    "no-unlock": "In CIRC_NO_OVERWRITE, release every frame with pl_exp_unlock_oldest_frame as "
    "soon as it is copied; or stream in CIRC_OVERWRITE, take pl_exp_get_latest_frame_ex in the "
    "EOF callback and count gaps in FrameNr as lost frames (as pyvcam, Micro-Manager and "
    "ophyd-pvcam do).",
    "param-polling": "Make no parameter call while frames stream (temperature, readout time, "
    "any pl_get_param or pl_set_param): read before the start and after the stop and show the "
    "cached values meanwhile, as ADKinetix, Micro-Manager and ophyd-pvcam do.",
    "callback-reregistration": "Register the EOF callback once per acquisition and deregister it "
    "(pl_cam_deregister_callback) when the acquisition ends, also after a start that failed; "
    "with pyvcam, call finish() after a start_live that raised.",
    "byte-limit": "Restart the acquisition before that many bytes (sequences, or a planned "
    "restart), or stream smaller frames (ROI, binning); report the limit, the PVCAM version and "
    "the interface to Teledyne Photometrics.",
    "frame-limit": "No buffer strategy helps: restart acquisitions before that frame as a "
    "workaround; check the PVCAM version, the firmware and the link (cable, USB/PCIe card) and "
    "report it to Teledyne Photometrics with this output.",
}


# ---- the verdict ------------------------------------------------------------------------------


@dataclass
class Verdict:
    reproduced: list[str]  # hypothesis ids, causes first, then no-unlock
    lines: list[str]  # the verdict, then one remedy per reproduced hypothesis

    def as_dict(self) -> dict[str, Any]:
        return {
            "reproduced": self.reproduced,
            "text": "\n".join(self.lines),
            "remedies": {h: REMEDIES[h] for h in self.reproduced},
        }


def verdict(hypotheses: Sequence[Hypothesis], fly_rows: Sequence[dict] = ()) -> Verdict:
    """What stopped the streams here, and what a driver must do instead."""
    found = {h.hypothesis: h for h in hypotheses}
    causes = [h for h in HYPOTHESES if h != "no-unlock" and found.get(h) and found[h].reproduced]
    untested = [h for h in HYPOTHESES if h in found and found[h].reproduced is None]
    lines = []
    if causes:
        lines.append(
            "Verdict: reproduced on this camera: "
            + "; ".join(f"{c} ({CLAIMS[c]})" for c in causes)
            + "."
        )
    else:
        tested = [h for h in HYPOTHESES if h != "no-unlock" and h not in untested]
        lines.append(
            "Verdict: none of the reported causes stops this camera's streams"
            + (f" ({', '.join(tested)}: not reproduced)" if tested else "")
            + "."
        )
    no_unlock = found.get("no-unlock")
    if no_unlock is not None and no_unlock.reproduced:
        lines.append(
            "no-unlock: reproduced, as PVCAM documents it: CIRC_NO_OVERWRITE halts once every "
            "buffer slot holds a frame nobody unlocked. A property of the buffer mode, a "
            "mistake a driver can make, not a fault of the camera."
        )
    if untested:
        lines.append(f"Not tested: {', '.join(untested)}.")
    if fly_rows:
        lines.append(fly_summary(fly_rows))
    reproduced = causes + (["no-unlock"] if no_unlock is not None and no_unlock.reproduced else [])
    if reproduced:
        lines.append("What a driver must do instead:")
        lines += [f"- {h}: {REMEDIES[h]}" for h in reproduced]
    return Verdict(reproduced, lines)


def fly_summary(rows: Sequence[dict]) -> str:
    """One line on ophyd-pvcam's own fly scans of the probe."""
    total = len(rows)
    stalled = [r for r in rows if r["outcome"] == "stalled"]
    failed = [r for r in rows if r["outcome"] == "failed"]
    lost = sum(r.get("lost") or 0 for r in rows)
    line = f"ophyd-pvcam's own fly scans: {total - len(stalled) - len(failed)} of {total} complete"
    if stalled:
        points = sorted({r["delivered"] + (r.get("lost") or 0) for r in stalled})
        where = (
            f"at frame {points[0]} whatever the buffer size"
            if len(points) == 1 and len({r["buffer_frames"] for r in stalled}) > 1
            else f"after frames {', '.join(map(str, points))}"
        )
        line += f", {len(stalled)} stalled {where}"
    if failed:
        line += f", {len(failed)} failed"
    return line + f"; {lost} frames lost."


# ---- text ---------------------------------------------------------------------------------------


def hypotheses_table(hypotheses: Sequence[Hypothesis], width: int = 100) -> str:
    """The hypotheses, one block each: id, outcome, evidence (wrapped)."""
    label = {True: "REPRODUCED", False: "not reproduced", None: "not tested"}
    lines = []
    for h in hypotheses:
        head = f"{h.hypothesis:<24} {label[h.reproduced]:<15} "
        body = textwrap.wrap(h.evidence, width - len(head)) or [""]
        lines.append(head + body[0])
        lines += [" " * len(head) + more for more in body[1:]]
    return "\n".join(lines)


def wrap_lines(lines: Sequence[str], width: int = 100) -> str:
    out = []
    for line in lines:
        indent = "  " if line.startswith("- ") else ""
        out += textwrap.wrap(line, width, subsequent_indent=indent) or [""]
    return "\n".join(out)
