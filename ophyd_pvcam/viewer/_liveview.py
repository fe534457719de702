"""Looking at the camera from a prompt or a script: ``live(cam)``, ``snap(cam)``, and the
RunEngine preprocessor that makes live windows give way to plans.

``ophyd-pvcam live`` and, in the IPython profile, ``live(cam)`` open a live window
(``_window``); ``snap(cam)`` takes one fresh frame and shows it.  Nothing is recorded,
nothing is written.  The drawing is in ``_drawing``, the display plumbing in
``_display``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._display import DisplayError, require_display, show_from_the_prompt
from ._drawing import DEFAULT_CONTRAST, draw_frame
from ._window import LiveView, open_views


class LiveViewsGiveWay:
    """RunEngine preprocessor: a plan that stages, triggers or kicks off a camera first
    stops the live windows streaming it (they stay open and say so; Apply restarts).
    Without it the plan would wait for a camera busy with a window.  The profile adds
    it: ``RE.preprocessors.append(LiveViewsGiveWay())``."""

    COMMANDS = ("stage", "trigger", "kickoff")

    def __call__(self, plan: Any) -> Any:
        from bluesky.preprocessors import msg_mutator

        def give_way(msg):
            if msg.command in self.COMMANDS:
                for view in open_views():
                    if view.cam is msg.obj and view.stream is not None:
                        view.give_way()
            return msg

        return (yield from msg_mutator(plan, give_way))


def live(cam: Any, *, contrast: Sequence[float] = DEFAULT_CONTRAST) -> LiveView:
    """Open a live window onto ``cam``; nothing is recorded.

    In IPython the prompt comes back and the window keeps streaming (close it, or
    ``view.close()``, before running a plan on the camera); in a script this returns
    when the window is closed."""
    require_display()
    view = LiveView(cam, contrast=contrast)
    if show_from_the_prompt():
        view.show()
    else:
        view.run()
    return view


def snap(
    cam: Any, *, contrast: Sequence[float] = DEFAULT_CONTRAST, show: bool = True
) -> np.ndarray:
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
    if show_from_the_prompt():
        figure.show()
    else:
        plt.show(block=True)
    return frame
