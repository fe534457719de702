"""``ophyd-pvcam show --png`` names the camera's frame number, not the row (its axes and
contrast: ``tests/unit/test_show_figure.py``)."""

from __future__ import annotations

import bluesky.plans as bp
import matplotlib.image
import pytest

import ophyd_pvcam.cli as cli
import ophyd_pvcam.sim as sim


@pytest.fixture
def runs(cam, RE, catalog):
    """A fly scan that lost every third frame, and a step scan of 2 frames a point."""
    cam.roi.set((960, 896, 128, 64)).wait(5)
    cam.exposure_time.set(0.002).wait(5)
    cam.num_frames.set(12).wait(5)
    sim.inject_fault("drop", every=3)
    (fly,) = RE(bp.fly([cam]))
    sim.clear_faults()
    cam.frames_per_point.set(2).wait(5)
    (step,) = RE(bp.count([cam], num=3))
    return catalog, fly, step


def test_the_png_names_the_cameras_frame_number_not_the_row(runs, capsys, tmp_path, data_dir):
    catalog, fly, step = runs
    fly_images = catalog[fly]["cam"]["cam_image"].read()
    step_images = catalog[step]["primary"]["cam_image"].read().reshape(6, 64, 128)
    for uid, index, image in ((fly, 5, fly_images[5, 0]), (step, 3, step_images[3])):
        png = tmp_path / f"{uid[:8]}.png"
        argv = ["--catalog", str(data_dir / "catalog"), "show", uid[:8], "--png", str(png)]
        assert cli.main([*argv, "--frame", str(index), "--contrast", "2,98"]) == 0
        number = sim.frame_number(image)  # stamped into the pixels by the simulator
        out = capsys.readouterr().out
        assert f"png      {png}  (camera frame {number}, index {index} of" in out
        picture = matplotlib.image.imread(png)
        assert picture.shape[1] >= 600 and picture.std() > 0
    assert sim.frame_number(fly_images[5, 0]) != 6  # lost frames: number and index differ
