"""What ``prepare(TriggerInfo)`` decided, in the camera's terms.

ophyd-async hands the trigger logic the number of exposures and the exposure time,
and the detector the whole :class:`~ophyd_async.core.TriggerInfo`; the acquisition
core wants a trigger mode, frames per point (a step scan's event) and frames per fly
scan.  :class:`Plan` is that translation, written once by ``prepare`` and read by the
acquire and data logic, so the three logics never disagree about what was asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ophyd_async.core import DetectorTrigger, TriggerInfo

INTERNAL = "Internal Trigger"
EDGE = "Edge Trigger"
LEVEL = "Bulb Mode"  # PVCAM's exposure-while-high mode, on cameras that offer it


@dataclass
class Plan:
    """The acquisition ``prepare`` set up (the defaults: one internally triggered
    frame per event, what a plan that never prepares gets)."""

    trigger: DetectorTrigger = DetectorTrigger.INTERNAL
    trigger_mode: str = INTERNAL
    livetime: float = 0.0  # s; 0: the exposure_time signal
    exposures_per_collection: int = 1
    collections_per_event: int = 1
    events: int = 1  # 0: until complete()
    stall_timeout: float = (
        0.0  # s, from TriggerInfo.exposure_timeout if it was given; 0: the signal
    )

    @classmethod
    def of(cls, info: TriggerInfo) -> Plan:
        given = "exposure_timeout" in info.model_fields_set
        return cls(
            trigger=info.trigger,
            trigger_mode={
                DetectorTrigger.INTERNAL: INTERNAL,
                DetectorTrigger.EXTERNAL_EDGE: EDGE,
                DetectorTrigger.EXTERNAL_LEVEL: LEVEL,
            }[info.trigger],
            livetime=info.livetime,
            exposures_per_collection=info.exposures_per_collection,
            collections_per_event=info.collections_per_event,
            events=info.number_of_events,
            stall_timeout=info.exposure_timeout if given else 0.0,
        )

    @property
    def frames_per_event(self) -> int:
        """Frames one event holds: every exposure of its collections, in order (the
        camera sums nothing, so a collection of several exposures keeps them all)."""
        return self.exposures_per_collection * self.collections_per_event

    @property
    def frames(self) -> int:
        """Frames a fly scan takes (0: until complete())."""
        return self.events * self.frames_per_event
