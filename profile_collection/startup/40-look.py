# Looking at the camera without recording anything:
#   view = live(cam)   a window streaming the camera (exposure and ROI change from it);
#                      a plan that uses cam stops it first (Apply in the window restarts)
#   frame = snap(cam)  one fresh frame, shown in a window, returned as an array
# Both need a desktop (DISPLAY); the queue server has none, so it does not offer them.
from bluesky_queueserver import is_re_worker_active

if not is_re_worker_active():
    from ophyd_pvcam.viewer import LiveViewsGiveWay, live, snap  # noqa: F401

    RE.preprocessors.append(LiveViewsGiveWay())  # noqa: F821 - RE comes from 00-base.py
