"""Looking at the camera: a live window, a snapped frame, and how frames are drawn."""

from ._figure import frame_figure, frame_png
from ._liveview import (
    DisplayError,
    LiveView,
    LiveViewsGiveWay,
    contrast_limits,
    draw_frame,
    live,
    require_display,
    snap,
)

__all__ = [
    "DisplayError",
    "LiveView",
    "LiveViewsGiveWay",
    "contrast_limits",
    "draw_frame",
    "frame_figure",
    "frame_png",
    "live",
    "require_display",
    "snap",
]
