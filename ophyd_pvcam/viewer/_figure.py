"""One recorded frame as a picture file: what ``ophyd-pvcam show --png`` writes.

It lives beside the live window because it draws a frame the same way (sensor-pixel
axes, percentile contrast, a colour bar; :func:`draw_frame`), so a frame looks alike
on the screen and on paper.  The figure is made without pyplot: no backend is chosen
and no global figure state is touched, so it is safe in a process (the IPython
profile) that also has live windows open.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_SIZE = (6.4, 5.6)  # inches: a frame with its axes, title and colour bar
DPI = 100


def frame_figure(
    image: np.ndarray,
    title: str,
    roi: Sequence[int] | None,
    binning: int,
    contrast: Sequence[float],
) -> Figure:
    """One frame in sensor pixels (``roi`` = x, y, width, height in unbinned pixels;
    None: the frame starts at the sensor's corner), with percentile contrast."""
    from matplotlib.figure import Figure  # on first use: importing the viewer stays light

    from . import draw_frame  # the package's, wherever the live window keeps it

    figure = Figure(figsize=FIGURE_SIZE, constrained_layout=True)
    axes = figure.add_subplot()
    draw_frame(figure, axes, image, roi=roi, binning=binning, contrast=contrast, title=title)
    return figure


def frame_png(
    image: np.ndarray,
    title: str,
    roi: Sequence[int] | None,
    binning: int,
    contrast: Sequence[float],
) -> bytes:
    """The PNG file's bytes of :func:`frame_figure` (the caller writes them, and says
    in its own words when it cannot)."""
    buffer = io.BytesIO()
    frame_figure(image, title, roi, binning, contrast).savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
