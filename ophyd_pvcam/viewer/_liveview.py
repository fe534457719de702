"""Looking at the camera: a live window, a snapped frame, and how frames are drawn.

``ophyd-pvcam live`` and, in the IPython profile, ``live(cam)`` open a window that
streams the camera (``cam.live()``: nothing is recorded, nothing is written) with
automatic contrast; its title shows how many frames per second are drawn, how many
the camera delivers and how many were lost.  Exposure and region of interest change
from the window: the stream stops, the settings are set (and checked, as always) and
it starts again.  Drag a box on the image to pick a region; "Full frame" goes back.

Frames are drawn in sensor pixels: the axes run over the region's place on the
sensor, so a spot at x=1000 is at x=1000 whatever the region.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
_views: weakref.WeakSet = weakref.WeakSet()  # every live window, to give way to plans

DEFAULT_CONTRAST = (1.0, 99.5)  # percentiles shown as black and white
MAX_DRAWN_PIXELS = 700  # larger frames are averaged down in blocks before drawing
RATE_WINDOW_S = 1.0  # rates in the title are over the last second
TITLE_EVERY_S = 0.5
BACKGROUND = "#252a33"  # dark, and not grey: the image is the only grey thing in the window
PANEL = "#39404d"
TEXT = "#e8ecf2"
WARNING = "#ffb347"


class DisplayError(RuntimeError):
    """No display to open a window on; the message says why and what to do."""


# ---- drawing a frame in sensor pixels ------------------------------------------------


def contrast_limits(image: np.ndarray, contrast: Sequence[float] = DEFAULT_CONTRAST):
    """(black, white) levels: the given percentiles of the image's pixels, from a
    sample of about 65,000 of them (fast enough for every frame of a live view)."""
    step = max(1, int(math.sqrt(image.size / 65536)))
    sample = image[::step, ::step]
    low, high = np.percentile(sample, contrast)
    if not high > low:
        high = low + 1
    return float(low), float(high)


def sensor_extent(roi: Sequence[int], shape: tuple[int, int]):
    """imshow's extent (left, right, bottom, top) putting a frame of ``shape`` (rows,
    columns, binned or not) where its region ``roi`` = (x, y, width, height) lies on
    the sensor, in unbinned pixels, row 0 at the top."""
    x, y, width, height = roi
    return (x, x + width, y + height, y)


def reduce_for_display(image: np.ndarray, limit: int = MAX_DRAWN_PIXELS):
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


# ---- a display to draw on ------------------------------------------------------------


def require_display() -> None:
    """Make matplotlib draw in a window (TkAgg unless an interactive backend is already
    chosen), or raise :class:`DisplayError` saying why it cannot."""
    import matplotlib

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise DisplayError(
            "no display to open a window on (DISPLAY is not set): run it on the "
            "workstation's desktop, or log in with 'ssh -X'"
        )
    backend = matplotlib.get_backend().lower()
    interactive = backend in {b.lower() for b in _interactive_backends()}
    if not interactive:
        try:
            import tkinter

            root = tkinter.Tk()  # can we reach the display at all?
            root.destroy()
        except Exception as error:  # tkinter.TclError, ImportError: one line either way
            raise DisplayError(
                f"cannot open a window on display {os.environ.get('DISPLAY', '?')}: "
                f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
            ) from None
        import matplotlib.pyplot as plt

        plt.switch_backend("TkAgg")


def _interactive_backends() -> list[str]:
    from matplotlib.backends import BackendFilter, backend_registry

    return backend_registry.list_builtin(BackendFilter.INTERACTIVE)


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "enable_matplotlib") else None


def _show_from_the_prompt() -> bool:
    """In IPython, let the prompt run the window's event loop (like ``%matplotlib``):
    True if windows then live on while the prompt waits, False if they must block."""
    shell = _ipython()
    if shell is None:
        return False
    if not getattr(shell, "active_eventloop", None):
        import matplotlib

        gui = {"tkagg": "tk", "qtagg": "qt", "macosx": "osx"}.get(
            matplotlib.get_backend().lower(), "tk"
        )
        shell.enable_matplotlib(gui)
    return True


# ---- the live window ---------------------------------------------------------------------


def _pixels_artist_class():
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


def _make_pixels():
    return _pixels_artist_class()()  # the class is built on first use: matplotlib is lazy


class LiveView:
    """A window streaming ``cam`` (a PrimeBSI) until it is closed.

    ``contrast``: the percentiles of each frame's pixels drawn black and white.
    ``run()`` shows it and returns when the window is closed; ``show()`` returns at
    once (IPython's prompt keeps it alive).  Never records or writes anything."""

    def __init__(self, cam, *, contrast: Sequence[float] = DEFAULT_CONTRAST):
        import matplotlib.pyplot as plt
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
        self._geometry = None  # (roi, binning) of the running stream
        self._caption = ""
        self._close_requested = False
        self._taken = False  # a plan took the camera: say so at the next tick
        _views.add(self)

        with plt.rc_context({"toolbar": "None"}):
            self.figure = plt.figure(figsize=(7.6, 8.0), facecolor=BACKGROUND)
        figure = self.figure
        self.axes = figure.add_axes([0.1, 0.22, 0.84, 0.68], facecolor=BACKGROUND)
        self.axes.tick_params(colors=TEXT, labelsize=8)
        for spine in self.axes.spines.values():
            spine.set_color(TEXT)
        self.axes.set_xlabel("x (sensor pixel)", color=TEXT)
        self.axes.set_ylabel("y (sensor pixel)", color=TEXT)
        self.axes.set_aspect("equal", adjustable="box")
        self.image = _make_pixels()  # drawn alone between full redraws (blitting)
        self.axes.add_artist(self.image)
        self._background = None
        self.heading = self.axes.set_title("starting the camera...", color=TEXT, fontsize=10)

        def box(rect, label, initial):
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

        self.exposure_box = box([0.25, 0.115, 0.14, 0.045], "exposure (ms) ", "")
        self.roi_box = box([0.52, 0.115, 0.26, 0.045], "ROI x,y,w,h ", "")
        apply_axes = figure.add_axes([0.80, 0.115, 0.12, 0.045])
        self.apply_button = Button(apply_axes, "Apply", color=PANEL, hovercolor="#4a5262")
        full_axes = figure.add_axes([0.80, 0.06, 0.12, 0.045])
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
            button=[1],
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
        self._geometry = (tuple(cam.roi.get()), int(cam.binning.get()))
        self.stream = cam.live()
        self._last_number = None
        self._received_marks.clear()
        self._drawn_times.clear()
        x, y, width, height = self._geometry[0]
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
        self._frame = frame
        shown, _ = reduce_for_display(frame)
        low, high = contrast_limits(shown, self.contrast)
        (x, y, width, height), binning = self._geometry
        scale = np.float32(255.0 / (high - low))
        self.image.gray = np.clip((shown - np.float32(low)) * scale, 0, 255).astype(np.uint8)
        self._caption = (
            f"frame {number}   {width}x{height} at ({x}, {y})"
            + (f", binned {binning}x{binning}" if binning > 1 else "")
            + f"   black {low:.0f}, white {high:.0f} ADU"
        )
        canvas = self.figure.canvas
        if self._background is None:
            canvas.draw_idle()
            return
        try:
            canvas.restore_region(self._background)
            self.axes.draw_artist(self.image)
            canvas.blit(self.axes.bbox)
        except Exception as error:  # the window is being made or resized: draw it all
            log.debug("blit failed (%s); redrawing the window", error)
            self._background = None
            canvas.draw_idle()

    def _resized(self, _event) -> None:
        self._background = None

    def _redrawn(self, _event) -> None:
        """After a full redraw: keep the axes without the image, then draw the image."""
        canvas = self.figure.canvas
        self._background = canvas.copy_from_bbox(self.axes.bbox)
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


# ---- for the IPython profile ---------------------------------------------------------


class LiveViewsGiveWay:
    """RunEngine preprocessor: a plan that stages, triggers or kicks off a camera first
    stops the live windows streaming it (they stay open and say so; Apply restarts).
    Without it the plan would wait for a camera busy with a window.  The profile adds
    it: ``RE.preprocessors.append(LiveViewsGiveWay())``."""

    COMMANDS = ("stage", "trigger", "kickoff")

    def __call__(self, plan):
        from bluesky.preprocessors import msg_mutator

        def give_way(msg):
            if msg.command in self.COMMANDS:
                for view in list(_views):
                    if view.cam is msg.obj and view.stream is not None:
                        view.stop()  # thread-safe: the stream's stop, not the window
                        view._taken = True
            return msg

        return (yield from msg_mutator(plan, give_way))


def live(cam, *, contrast: Sequence[float] = DEFAULT_CONTRAST) -> LiveView:
    """Open a live window onto ``cam``; nothing is recorded.

    In IPython the prompt comes back and the window keeps streaming (close it, or
    ``view.close()``, before running a plan on the camera); in a script this returns
    when the window is closed."""
    require_display()
    view = LiveView(cam, contrast=contrast)
    if _show_from_the_prompt():
        view.show()
    else:
        view.run()
    return view


def snap(cam, *, contrast: Sequence[float] = DEFAULT_CONTRAST, show: bool = True) -> np.ndarray:
    """One fresh frame from ``cam`` (nothing recorded), shown in a window when there is
    a display; returns it as an array."""
    frame = cam.snap()
    (x, y, width, height), binning = tuple(cam.roi.get()), int(cam.binning.get())
    print(
        f"{cam.name}: {frame.shape[1]}x{frame.shape[0]} pixels at ({x}, {y}), "
        f"min {int(frame.min())}, mean {float(frame.mean()):.1f}, max {int(frame.max())} ADU"
    )
    if not show:
        return frame
    try:
        require_display()
    except DisplayError as error:
        print(f"not shown: {error}")
        return frame
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 5.6), constrained_layout=True)
    draw_frame(
        figure,
        axes,
        frame,
        roi=(x, y, width, height),
        binning=binning,
        contrast=contrast,
        title=f"{cam.name} snap, exposure {cam.exposure_time.get() * 1e3:g} ms",
    )
    if _show_from_the_prompt():
        figure.show()
    else:
        plt.show(block=True)
    return frame


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
