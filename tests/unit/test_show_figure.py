"""``ophyd-pvcam show --png``'s figure: sensor-pixel axes and percentile contrast (the
frame number it names: ``tests/sim/test_show.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from ophyd_pvcam.viewer import frame_figure


def test_the_frame_is_drawn_in_sensor_pixels_with_percentile_contrast():
    image = np.arange(64 * 128, dtype=np.uint16).reshape(64, 128)
    figure = frame_figure(image, "t", roi=(100, 200, 256, 128), binning=2, contrast=(1, 99))
    axes = figure.axes[0]
    shown = axes.get_images()[0]
    assert shown.get_extent() == [100, 356, 328, 200]  # x from 100, y from 200, top down
    assert shown.get_clim() == pytest.approx(tuple(np.percentile(image, (1, 99))), rel=0.01)
    assert axes.get_xlabel() == "x (sensor pixel, binned 2x2)"
    assert "percentiles 1 to 99" in figure.axes[1].get_ylabel()
