"""How a frame is drawn: in sensor pixels, with percentile contrast, small enough to
redraw many times a second.

Frames are drawn in sensor pixels: the axes run over the region's place on the
sensor, so a spot at x=1000 is at x=1000 whatever the region.  The live window, a
snapped frame and ``show``'s picture all draw this way, so a frame looks alike on the
screen and on paper.  matplotlib is imported on first use: importing the viewer stays
light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_CONTRAST = (1.0, 99.5)  # percentiles shown as black and white
MAX_DRAWN_PIXELS = 700  # larger frames are averaged down in blocks before drawing


def contrast_limits(
    image: np.ndarray, contrast: Sequence[float] = DEFAULT_CONTRAST
) -> tuple[float, float]:
    """(black, white) levels: the given percentiles of the image's pixels, from a
    sample of about 65,000 of them (fast enough for every frame of a live view)."""
    step = max(1, int(math.sqrt(image.size / 65536)))
    sample = image[::step, ::step]
    low, high = np.percentile(sample, contrast)
    if not high > low:
        high = low + 1
    return float(low), float(high)


def sensor_extent(roi: Sequence[int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """imshow's extent (left, right, bottom, top) putting a frame of ``shape`` (rows,
    columns, binned or not) where its region ``roi`` = (x, y, width, height) lies on
    the sensor, in unbinned pixels, row 0 at the top."""
    x, y, width, height = roi
    return (x, x + width, y + height, y)


def reduce_for_display(image: np.ndarray, limit: int = MAX_DRAWN_PIXELS) -> tuple[np.ndarray, int]:
    """The image summed in k x k blocks so neither side exceeds ``limit`` (drawing a
    full 2048 x 2048 frame every time would cap the refresh rate), and k."""
    rows, columns = image.shape
    k = max(1, math.ceil(max(rows, columns) / limit))
    if k == 1:
        return image, 1
    rows, columns = rows // k * k, columns // k * k
    total = np.zeros((rows // k, columns // k), np.float32)
    for i in range(k):  # k*k strided views: several times faster than reshape().mean()
        for j in range(k):
            total += image[i:rows:k, j:columns:k]
    return total / (k * k), k


def _pixels_artist_class() -> Any:
    from matplotlib.artist import Artist

    class Pixels(Artist):
        """A grey image filling its axes, scaled to the screen by nearest neighbour in
        numpy and handed to the renderer as is: several times faster than imshow's
        resampling, which would cap the live view near 10 frames/s on a busy machine."""

        def __init__(self):
            super().__init__()
            self.gray: np.ndarray | None = None  # uint8, row 0 at the top
            self.set_animated(True)

        def draw(self, renderer) -> None:
            gray, axes = self.gray, self.axes
            if gray is None or axes is None or not self.get_visible():
                return
            box = axes.bbox
            columns, rows = round(box.width), round(box.height)
            if columns < 1 or rows < 1:
                return
            pick_rows = ((np.arange(rows) + 0.5) * (gray.shape[0] / rows)).astype(np.intp)
            pick_columns = ((np.arange(columns) + 0.5) * (gray.shape[1] / columns)).astype(np.intp)
            scaled = gray.take(pick_rows, axis=0).take(pick_columns, axis=1)
            rgba = np.empty((rows, columns, 4), np.uint8)
            rgba[..., :3] = scaled[..., None]
            rgba[..., 3] = 255
            gc = renderer.new_gc()
            gc.set_clip_rectangle(box)
            renderer.draw_image(gc, round(box.x0), round(box.y0), rgba[::-1])
            gc.restore()

    return Pixels


def make_pixels() -> Any:
    """A :class:`Pixels` artist (its ``gray`` is the uint8 image to draw, row 0 at the top)."""
    return _pixels_artist_class()()  # the class is built on first use: matplotlib is lazy


def draw_frame(
    figure,
    axes,
    image: np.ndarray,
    *,
    roi: Sequence[int] | None,
    binning: int = 1,
    contrast: Sequence[float] = DEFAULT_CONTRAST,
    title: str = "",
) -> Any:
    """Draw one frame in sensor pixels with percentile contrast and a colour bar."""
    low, high = contrast_limits(image, contrast)
    rows, columns = image.shape
    roi = tuple(roi) if roi is not None else (0, 0, columns * binning, rows * binning)
    shown = axes.imshow(
        image,
        cmap="gray",
        interpolation="nearest",
        vmin=low,
        vmax=high,
        extent=sensor_extent(roi, image.shape),
    )
    unit = "sensor pixel" + (f", binned {binning}x{binning}" if binning > 1 else "")
    axes.set(xlabel=f"x ({unit})", ylabel=f"y ({unit})", title=title)
    clipped = {(True, True): "both", (True, False): "min", (False, True): "max"}
    figure.colorbar(
        shown,
        ax=axes,
        extend=clipped.get((contrast[0] > 0, contrast[1] < 100), "neither"),
        label=f"ADU (black to white: percentiles {contrast[0]:g} to {contrast[1]:g})",
    )
    return shown
