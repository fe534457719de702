"""Looking at the camera: a live window, a snapped frame, and how frames are drawn."""

from ._display import DisplayError, require_display
from ._drawing import contrast_limits, draw_frame
from ._figure import frame_figure, frame_png
from ._liveview import LiveViewsGiveWay, live, snap
from ._window import LiveView

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
