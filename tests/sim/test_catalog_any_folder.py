"""The embedded catalog reads every run written into it, wherever its camera wrote."""

from __future__ import annotations

import bluesky.plans as bp
from helpers import read_run_in_new_process

from ophyd_pvcam import sim


def test_a_run_under_any_folder_replays_from_a_process_given_only_the_catalog(
    RE, catalog, data_dir, tmp_path
):
    from ophyd_pvcam import PrimeBSI

    elsewhere = tmp_path / "my frames"  # outside the data folder, a space in the name
    cam = PrimeBSI("cam", sim=True, write_path=elsewhere)
    try:
        cam.roi.set((0, 0, 64, 32)).wait(5)
        cam.exposure_time.set(0.002).wait(5)
        cam.num_frames.set(25).wait(5)
        (fly_uid,) = RE(bp.fly([cam]))
        (count_uid,) = RE(bp.count([cam], num=3))
    finally:
        cam.close()
    learned = (data_dir / "catalog" / "frames-folders.txt").read_text().splitlines()
    assert str(elsewhere.resolve()) in learned

    for uid, stream, frames in ((fly_uid, "cam", 25), (count_uid, "primary", 3)):
        images, info = read_run_in_new_process(
            data_dir / "catalog", uid, stream, "cam_image", tmp_path
        )
        assert info["stop"]["exit_status"] == "success"
        numbers = [sim.frame_number(f) for f in images.reshape(-1, *images.shape[-2:])]
        assert numbers == list(range(1, frames + 1))
    # and in this process, without naming the folder
    assert catalog[fly_uid]["cam"]["cam_image"].read().shape == (25, 1, 32, 64)
