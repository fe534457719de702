"""The live window: a camera streamed (``cam.live()``: nothing recorded, nothing written)
with automatic contrast, and controls to change exposure and region of interest.

Its title shows how many frames per second are drawn, how many the camera delivers and
how many were lost.  Exposure and region change from the window: the stream stops, the
settings are set (and checked, as always) and it starts again.  Drag a box on the image
to pick a region; "Full frame" goes back.  Between full redraws only the image is drawn
again (blitting), where the canvas can.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._drawing import DEFAULT_CONTRAST, contrast_limits, make_pixels, reduce_for_display

if TYPE_CHECKING:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

log = logging.getLogger(__name__)

RATE_WINDOW_S = 1.0  # rates in the title are over the last second
TITLE_EVERY_S = 0.5
BACKGROUND = "#252a33"  # dark, and not grey: the image is the only grey thing in the window
PANEL = "#39404d"
TEXT = "#e8ecf2"
WARNING = "#ffb347"

_views: weakref.WeakSet[LiveView] = weakref.WeakSet()  # every live window, to give way to plans


def open_views() -> list[LiveView]:
    """Every live window still open in this process."""
    return list(_views)


def _blitting(canvas: Any) -> FigureCanvasAgg | None:
    """The canvas, if it can keep a region and draw one artist over it (every Agg-based
    backend can); None for one that can only redraw everything."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return canvas if isinstance(canvas, FigureCanvasAgg) else None


class LiveView:
    """A window streaming ``cam`` (a PrimeBSI) until it is closed.

    ``contrast``: the percentiles of each frame's pixels drawn black and white.
    ``run()`` shows it and returns when the window is closed; ``show()`` returns at
    once (IPython's prompt keeps it alive).  Never records or writes anything."""

    def __init__(self, cam, *, contrast: Sequence[float] = DEFAULT_CONTRAST):
        import matplotlib.pyplot as plt
        from matplotlib.backend_bases import MouseButton
        from matplotlib.widgets import Button, RectangleSelector, TextBox

        self.cam = cam
        self.contrast = tuple(float(c) for c in contrast)
        self.stream = None
        self.shown = 0  # frames drawn, over every stream of this window
        self.lost = 0  # frames lost, over every stream of this window
        self.closed = threading.Event()
        self._drawn_times: deque = deque()
        self._received_marks: deque = deque()
        self._last_number = None
        self._last_title = 0.0
        self._frame: np.ndarray | None = None  # the newest frame, full resolution
        self._geometry: tuple[tuple[int, ...], int] | None = None  # (roi, binning) streamed
        self._caption = ""
        self._close_requested = False
        self._taken = False  # a plan took the camera: say so at the next tick
        _views.add(self)

        with plt.rc_context({"toolbar": "None"}):
            self.figure = plt.figure(figsize=(7.6, 8.0), facecolor=BACKGROUND)
        figure = self.figure
        self.axes = figure.add_axes((0.1, 0.22, 0.84, 0.68), facecolor=BACKGROUND)
        self.axes.tick_params(colors=TEXT, labelsize=8)
        for spine in self.axes.spines.values():
            spine.set_color(TEXT)
        self.axes.set_xlabel("x (sensor pixel)", color=TEXT)
        self.axes.set_ylabel("y (sensor pixel)", color=TEXT)
        self.axes.set_aspect("equal", adjustable="box")
        self.image = make_pixels()  # drawn alone between full redraws (blitting)
        self.axes.add_artist(self.image)
        self._background = None
        self.heading = self.axes.set_title("starting the camera...", color=TEXT, fontsize=10)

        def box(rect: tuple[float, float, float, float], label: str, initial: str) -> Any:
            axes = figure.add_axes(rect)
            text = TextBox(
                axes,
                label,
                initial=initial,
                color=PANEL,
                hovercolor="#4a5262",
                textalignment="left",
            )
            text.label.set_color(TEXT)
            text.text_disp.set_color(TEXT)
            return text

        self.exposure_box = box((0.25, 0.115, 0.14, 0.045), "exposure (ms) ", "")
        self.roi_box = box((0.52, 0.115, 0.26, 0.045), "ROI x,y,w,h ", "")
        apply_axes = figure.add_axes((0.80, 0.115, 0.12, 0.045))
        self.apply_button = Button(apply_axes, "Apply", color=PANEL, hovercolor="#4a5262")
        full_axes = figure.add_axes((0.80, 0.06, 0.12, 0.045))
        self.full_button = Button(full_axes, "Full frame", color=PANEL, hovercolor="#4a5262")
        for button in (self.apply_button, self.full_button):
            button.label.set_color(TEXT)
        self.status = figure.text(0.03, 0.075, "", color=TEXT, fontsize=9, va="center")
        self.readout = figure.text(0.03, 0.025, "", color=TEXT, fontsize=9, va="center")
        self.apply_button.on_clicked(lambda _event: self.apply_from_boxes())
        self.full_button.on_clicked(lambda _event: self.full_frame())
        self._filling = False
        self.exposure_box.on_submit(self._submitted)
        self.roi_box.on_submit(self._submitted)
        self.selector = RectangleSelector(
            self.axes,
            self._region_dragged,
            useblit=False,
            button=MouseButton.LEFT,
            minspanx=8,
            minspany=8,
            spancoords="data",
            props={"edgecolor": WARNING, "fill": False, "linewidth": 1.5},
        )
        figure.canvas.mpl_connect("draw_event", self._redrawn)
        figure.canvas.mpl_connect("resize_event", self._resized)
        figure.canvas.mpl_connect("close_event", self._window_closed)
        figure.canvas.mpl_connect("motion_notify_event", self._pointer_moved)
        self.timer = figure.canvas.new_timer(interval=20)
        self.timer.add_callback(self._tick)
        self._fill_boxes()
        self._say("drag a box on the image to pick a region of interest; Apply restarts")
        self.start()
        self.timer.start()

    # ---- the camera ------------------------------------------------------------------

    def start(self) -> None:
        """Start streaming with the camera's current settings."""
        cam = self.cam
        roi = tuple(int(v) for v in cam.roi.get())
        self._geometry = (roi, int(cam.binning.get()))
        self.stream = cam.live()
        self._last_number = None
        self._received_marks.clear()
        self._drawn_times.clear()
        x, y, width, height = roi
        self.axes.set_xlim(x, x + width)
        self.axes.set_ylim(y + height, y)
        self._background = None  # the axes change: the next frame redraws everything

    def stop(self) -> None:
        """Stop streaming (the window stays)."""
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.stop()
            self.lost += stream.lost

    def apply(self, *, exposure_time: float | None = None, roi=None) -> bool:
        """Stop, set the exposure (s) and/or region, start again.  A refused value is
        shown in the window and the camera restarts as it was; returns whether it was
        accepted."""
        cam = self.cam
        self.stop()
        accepted = True
        try:
            if roi is not None:
                cam.roi.set(tuple(int(v) for v in roi)).wait(10)
            if exposure_time is not None:
                cam.exposure_time.set(float(exposure_time)).wait(10)
        except (ValueError, RuntimeError) as error:
            self._say(f"refused: {error}", WARNING)
            accepted = False
        else:
            x, y, width, height = cam.roi.get()
            self._say(
                f"applied: {width}x{height} at ({x}, {y}), exposure "
                f"{cam.exposure_time.get() * 1e3:g} ms"
            )
        self._fill_boxes()
        try:
            self.start()
        except Exception as error:  # the camera refused to start again: say so, stay open
            self._say(f"cannot start the camera: {error}", WARNING)
            return False
        return accepted

    def apply_from_boxes(self) -> None:
        try:
            exposure_ms = float(self.exposure_box.text)
            roi = [round(float(v)) for v in self.roi_box.text.replace(" ", "").split(",")]
            if len(roi) != 4:
                raise ValueError
        except ValueError:
            self._say(
                "give the exposure in ms and the ROI as x,y,width,height (sensor pixels)",
                WARNING,
            )
            return
        self.apply(exposure_time=exposure_ms / 1e3, roi=roi)

    def full_frame(self) -> None:
        caps = self.cam.capabilities
        self.apply(roi=(0, 0, caps.sensor_width, caps.sensor_height))

    def give_way(self) -> None:
        """A plan takes the camera: stop streaming (the stream's stop, safe from the
        RunEngine's thread; the window stays) and say so at the next tick."""
        self.stop()
        self._taken = True

    def close(self) -> None:
        """Stop streaming and close the window."""
        import matplotlib.pyplot as plt

        self.timer.stop()
        self.stop()
        plt.close(self.figure)
        self.closed.set()

    # ---- showing it ----------------------------------------------------------------

    def run(self) -> None:
        """Show the window until it is closed, Ctrl-C or SIGTERM (which close it: a
        KeyboardInterrupt inside the window's event loop would be swallowed by Tk)."""
        import matplotlib.pyplot as plt

        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for number in handled:
                previous[number] = signal.signal(number, lambda *_: self.request_close())
        try:
            plt.show(block=True)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            if not self.closed.is_set():
                self.close()

    def show(self) -> None:
        """Show the window and return (for IPython's prompt, which keeps it alive)."""
        self.figure.show()

    # ---- the window's clock -----------------------------------------------------------

    def request_close(self) -> None:
        """Close the window at the next tick of its clock (safe from a signal handler)."""
        self._close_requested = True

    def _tick(self) -> None:
        if self._close_requested and not self.closed.is_set():
            self.close()
        if self._taken:
            self._taken = False
            self._say("stopped: a plan took the camera; Apply starts it again", WARNING)
            self._update_title(time.monotonic(), force=True)
        stream = self.stream
        if stream is None or self.closed.is_set():
            return
        now = time.monotonic()
        frame, info = stream.latest()
        if frame is not None and info is not None and info.number != self._last_number:
            self._last_number = info.number
            self._draw(frame, info.number)
            self._drawn_times.append(now)
            self.shown += 1
        self._received_marks.append((now, stream.received))
        while self._drawn_times and now - self._drawn_times[0] > RATE_WINDOW_S:
            self._drawn_times.popleft()
        while len(self._received_marks) > 2 and now - self._received_marks[0][0] > RATE_WINDOW_S:
            self._received_marks.popleft()
        if stream.done.is_set():
            error = stream.error
            self.stop()
            self._say(f"the camera stopped: {error}" if error else "the camera stopped", WARNING)
            self._update_title(now, force=True)
            self.figure.canvas.draw_idle()
            return
        self._update_title(now)

    def _draw(self, frame: np.ndarray, number: int) -> None:
        geometry = self._geometry
        if geometry is None:  # no stream started: nothing says where the frame lies
            return
        self._frame = frame
        shown, _ = reduce_for_display(frame)
        low, high = contrast_limits(shown, self.contrast)
        (x, y, width, height), binning = geometry
        scale = np.float32(255.0 / (high - low))
        self.image.gray = np.clip((shown - np.float32(low)) * scale, 0, 255).astype(np.uint8)
        self._caption = (
            f"frame {number}   {width}x{height} at ({x}, {y})"
            + (f", binned {binning}x{binning}" if binning > 1 else "")
            + f"   black {low:.0f}, white {high:.0f} ADU"
        )
        canvas = self.figure.canvas
        blitting = _blitting(canvas)
        if self._background is None or blitting is None:
            canvas.draw_idle()
            return
        try:
            blitting.restore_region(self._background)
            self.axes.draw_artist(self.image)
            blitting.blit(self.axes.bbox)
        except Exception as error:  # the window is being made or resized: draw it all
            log.debug("blit failed (%s); redrawing the window", error)
            self._background = None
            canvas.draw_idle()

    def _resized(self, _event) -> None:
        self._background = None

    def _redrawn(self, _event) -> None:
        """After a full redraw: keep the axes without the image, then draw the image."""
        blitting = _blitting(self.figure.canvas)
        if blitting is not None:
            self._background = blitting.copy_from_bbox(self.axes.bbox)
        self.axes.draw_artist(self.image)

    def rates(self) -> tuple[float, float]:
        """(frames drawn per second, frames the camera delivered per second), over the
        last second."""
        drawn = len(self._drawn_times) / RATE_WINDOW_S
        marks = self._received_marks
        if len(marks) < 2 or marks[-1][0] <= marks[0][0]:
            return drawn, 0.0
        delivered = (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])
        return drawn, delivered

    def title(self) -> str:
        drawn, delivered = self.rates()
        lost = self.lost + (self.stream.lost if self.stream is not None else 0)
        state = "" if self.stream is not None else "  [stopped]"
        exposure_ms = self.cam.exposure_time.get() * 1e3
        return (
            f"{self.cam.name} live: {drawn:.1f} frames/s shown, camera {delivered:.1f} "
            f"frames/s, {lost} lost, exposure {exposure_ms:g} ms{state}"
        )

    def _update_title(self, now: float, force: bool = False) -> None:
        if not force and now - self._last_title < TITLE_EVERY_S:
            return
        self._last_title = now
        if self._caption:
            self.heading.set_text(self._caption)
        self.figure.canvas.draw_idle()  # text changes: a full redraw, twice a second
        manager = self.figure.canvas.manager
        if manager is not None:
            manager.set_window_title(self.title())

    # ---- the controls ------------------------------------------------------------------

    def _fill_boxes(self) -> None:
        self._set_text(self.exposure_box, f"{self.cam.exposure_time.get() * 1e3:g}")
        self._set_text(self.roi_box, ", ".join(str(int(v)) for v in self.cam.roi.get()))

    def _set_text(self, box, text: str) -> None:
        """Fill a text box without it reporting a submission (set_val would)."""
        self._filling = True
        try:
            box.set_val(text)
        finally:
            self._filling = False

    def _submitted(self, _text: str) -> None:
        if not self._filling:
            self.apply_from_boxes()

    def _region_dragged(self, press, release) -> None:
        x0, x1, y0, y1 = self.selector.extents
        x, y = round(min(x0, x1)), round(min(y0, y1))
        width, height = round(abs(x1 - x0)), round(abs(y1 - y0))
        self._set_text(self.roi_box, f"{x}, {y}, {width}, {height}")
        self._say("region picked: Apply (or Enter) restarts the camera with it")

    def _pointer_moved(self, event) -> None:
        frame, geometry = self._frame, self._geometry
        if event.inaxes is not self.axes or frame is None or geometry is None:
            return
        (x, y, _, _), binning = geometry
        column = int((event.xdata - x) // binning)
        row = int((event.ydata - y) // binning)
        if 0 <= row < frame.shape[0] and 0 <= column < frame.shape[1]:
            self.readout.set_text(
                f"x {event.xdata:.0f}, y {event.ydata:.0f}: {int(frame[row, column])} ADU"
            )
            self.figure.canvas.draw_idle()

    def _say(self, text: str, colour: str = TEXT) -> None:
        self.status.set_text(text)
        self.status.set_color(colour)

    def _window_closed(self, _event) -> None:
        self.timer.stop()
        self.stop()
        self.closed.set()
