"""Trigger logic: internal, edge and level triggers mapped to the camera's modes.

Nothing here talks to the camera: ``prepare`` only checks what was asked against what
the camera offers (one clear line naming the value and what is allowed, before any
file exists) and records it in the :class:`~ophyd_pvcam.asyncio.Plan`; the camera is
set up when it starts, by the core.  The deadtime comes from the core's readout model
(no camera call), so a plan may ask for it at any time, also while frames stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ophyd_async.core import DetectorTriggerLogic, SignalDict, SignalR, TriggerInfo

from ophyd_pvcam.acquisition import CameraController, Settings

from ._plan import LEVEL, Plan


class PvcamTriggerLogic(DetectorTriggerLogic):
    """Internal triggers run the camera on its own clock (software triggers in step
    scans, so each frame is exposed after the trigger, docs/decisions/0002); edge
    triggers expose one frame of ``exposure_time`` per rising edge; level triggers need
    the camera's ``Bulb Mode``."""

    def __init__(
        self,
        controller: CameraController,
        plan: Plan,
        setting_signals: Mapping[str, SignalR],
        settings_of: Callable[[Mapping[str, Any]], Settings],
    ):
        self._controller = controller
        self._plan = plan
        self._signals = dict(setting_signals)
        self._settings_of = settings_of

    def config_sigs(self) -> set[SignalR]:
        return set(self._signals.values())

    def get_deadtime(self, config_values: SignalDict) -> float:
        """The readout time of these settings: after each exposure the sensor reads its
        ROI out before it can expose again.  From the core's readout model (learnt from
        the camera after each acquisition); before this readout speed was ever seen,
        the camera's last reported readout time."""
        values = {name: config_values[signal] for name, signal in self._signals.items()}
        settings = self._settings_of(values)
        readout = self._controller.readout_time(settings)
        if readout is None:
            readings = self._controller.readings()
            readout = readings.readout_time_s if readings is not None else math.nan
        return float(readout) if math.isfinite(readout) else 0.0

    async def prepare_internal(self, num: int, livetime: float, deadtime: float) -> None:
        if deadtime:
            raise ValueError(
                f"deadtime={deadtime!r} s cannot be set: on internal triggers the camera "
                "runs at its fastest rate (deadtime 0); use edge triggers for another rate"
            )
        self._livetime(livetime)

    async def prepare_edge(self, num: int, livetime: float) -> None:
        self._livetime(livetime)

    async def prepare_level(self, num: int) -> None:
        modes = self._controller.capabilities.trigger_modes
        if LEVEL not in modes:
            raise ValueError(
                f"trigger=EXTERNAL_LEVEL needs the camera's {LEVEL!r}, which "
                f"{self._controller.capabilities.name} does not offer; its trigger modes "
                f"are {', '.join(map(repr, modes))} (use EXTERNAL_EDGE)"
            )

    async def prepare_exposures_per_collection(self, exposures_per_collection: int) -> None:
        self._plan.exposures_per_collection = exposures_per_collection

    async def default_trigger_info(self) -> TriggerInfo:
        return TriggerInfo()

    def _livetime(self, livetime: float) -> None:
        if livetime:  # 0: keep exposure_time as set
            self._controller.checker.exposure_time(livetime)
