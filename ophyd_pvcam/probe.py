"""The stall probe's SDK half: the original investigation's buffer-mode matrix.

pyvcam only ever streams in CIRC_OVERWRITE, so this drives PVCAM directly
(:mod:`ophyd_pvcam.sdk`) and reproduces the three strategies the 85-frame
stall report tried, with a frame callback pacing a consumer loop:

- CIRC_OVERWRITE, take the latest frame on each callback;
- CIRC_NO_OVERWRITE, take the oldest frame and unlock it;
- CIRC_NO_OVERWRITE, take the latest frame and never unlock.

For each buffer size it counts the frames delivered before frames stopped
(no callback within the stall timeout) or the target was reached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .sdk import (
    CIRC_NO_OVERWRITE,
    CIRC_OVERWRITE,
    PL_CALLBACK_EOF,
    FrameCounter,
    PvcamError,
    Region,
    Sdk,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Strategy:
    name: str
    buffer_mode: int
    oldest: bool
    unlock: bool


STRATEGIES = (
    Strategy("OVERWRITE + get latest", CIRC_OVERWRITE, oldest=False, unlock=False),
    Strategy("NO_OVERWRITE + get oldest + unlock", CIRC_NO_OVERWRITE, oldest=True, unlock=True),
    Strategy("NO_OVERWRITE + get latest, no unlock", CIRC_NO_OVERWRITE, oldest=False,
             unlock=False),
)  # fmt: skip


@dataclass(frozen=True)
class SdkResult:
    strategy: str
    buffer_frames: int
    delivered: int
    target: int
    stalled: bool
    last_frame: int


def run_strategy(
    sdk: Sdk,
    handle: int,
    strategy: Strategy,
    buffer_frames: int,
    frames: int,
    exposure_ms: int = 2,
    region: Region | None = None,
    stall_timeout: float = 1.0,
) -> SdkResult:
    """Stream until ``frames`` frames or a stall; returns what was delivered."""
    region = region or Region.of(0, 0, 256, 128)
    frame_bytes = sdk.setup_cont(handle, region, exposure_ms, strategy.buffer_mode)
    buffer = np.zeros(frame_bytes * buffer_frames // 2 + 1, dtype=np.uint16)
    counter = FrameCounter()
    sdk.on_frame(handle, PL_CALLBACK_EOF, counter)
    sdk.start_cont(handle, buffer)
    consumed, last = 0, 0
    try:
        while consumed < frames:
            if not counter.wait_beyond(consumed, stall_timeout):
                break  # no callback within the timeout: frames stopped
            consumed = counter.count
            frame = (sdk.oldest_frame if strategy.oldest else sdk.latest_frame)(
                handle, region.shape
            )
            last = frame.number
            if strategy.unlock:
                sdk.unlock_oldest(handle)
    finally:
        sdk.abort(handle)
        sdk.clear_callback(handle, PL_CALLBACK_EOF)
    delivered = min(counter.count, frames)
    return SdkResult(strategy.name, buffer_frames, delivered, frames, delivered < frames, last)


def buffer_mode_matrix(
    camera_name: str | None,
    buffers: Sequence[int],
    frames: int,
    exposure_ms: int = 2,
    stall_timeout: float = 1.0,
) -> list[SdkResult]:
    """Every strategy at every buffer size, on one camera opened through the SDK."""
    sdk = Sdk()
    initialised = False
    try:
        sdk.init()
        initialised = True
    except PvcamError as error:
        if "already initialized" not in str(error).lower():
            raise
    try:
        name = camera_name or sdk.camera_names()[0]
        handle = sdk.open(name)
        try:
            return [
                run_strategy(
                    sdk, handle, strategy, buffer, frames, exposure_ms, stall_timeout=stall_timeout
                )
                for strategy in STRATEGIES
                for buffer in buffers
            ]
        finally:
            sdk.close(handle)
    finally:
        if initialised:
            sdk.uninit()


def plot(device_rows: list[dict[str, Any]], sdk_rows: list[SdkResult], path: Path) -> Path:
    """Frames delivered against buffer size, one line per strategy / readout setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    groups = _group(device_rows, lambda r: f"{r['port']}, {r['exposure_s'] * 1e3:g} ms")
    for style, (label, rows) in zip(_STYLES, groups, strict=False):
        rows.sort(key=lambda r: r["buffer_frames"])
        left.plot(
            [r["buffer_frames"] for r in rows], [r["delivered"] for r in rows], label=label, **style
        )
    if device_rows:
        left.axhline(device_rows[0]["target"], color="grey", linestyle=":", label="target")
    left.set(
        title="ophyd-pvcam fly scans (pyvcam, CIRC_OVERWRITE)",
        xlabel="circular buffer size (frames)",
        ylabel="frames delivered before stop",
    )
    left.legend(fontsize=8)
    results = [asdict(r) for r in sdk_rows]
    for style, (label, rows) in zip(
        _STYLES, _group(results, lambda r: r["strategy"]), strict=False
    ):
        rows.sort(key=lambda r: r["buffer_frames"])
        right.plot(
            [r["buffer_frames"] for r in rows], [r["delivered"] for r in rows], label=label, **style
        )
    if results:
        right.axhline(results[0]["target"], color="grey", linestyle=":", label="target")
        buffers = sorted({r["buffer_frames"] for r in results})
        right.plot(
            buffers,
            buffers,
            color="black",
            linewidth=0.8,
            linestyle="--",
            label="delivered = buffer size",
        )
    right.set(
        title="PVCAM buffer strategies (ctypes, as in the stall report)",
        xlabel="circular buffer size (frames)",
        ylabel="frames delivered before stop",
    )
    right.legend(fontsize=8)
    for axes in (left, right):
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    figure.suptitle("Stall probe: does the stall follow the buffer size?")
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# distinct markers, sizes and dashes, so series that coincide stay visible
_STYLES = [
    {"marker": marker, "markersize": size, "linestyle": dash, "linewidth": 1.5}
    for marker, size, dash in (
        ("o", 10, "-"),
        ("s", 7, "--"),
        ("^", 5, "-."),
        ("D", 4, ":"),
        ("v", 4, "-"),
        ("x", 6, "--"),
    )
] * 4


def _group(rows, key):
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups.items()
