"""The live view, for real: ``ophyd-pvcam live`` in a window on a virtual X display,
looked at through a screenshot (its controls, driven from Python:
``tests/sim/test_liveview_controls.py``)."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ophyd_pvcam.viewer import contrast_limits

TITLE = re.compile(
    r'"cam live: ([\d.]+) frames/s shown, camera ([\d.]+) frames/s, (\d+) lost[^"]*":'
    r".*?\s(\d+)x(\d+)\+(-?\d+)\+(-?\d+)"
)
ROI = (768, 640, 512, 512)


@pytest.fixture(scope="module")
def display():
    """A virtual X display of our own (Xvfb picks a free number and tells us)."""
    missing = [tool for tool in ("Xvfb", "xwininfo") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install xvfb x11-utils)")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x900x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 30)
        number = os.read(read, 64).decode().strip() if ready else ""
        if not number:
            pytest.fail("Xvfb did not start within 30 s")
        yield f":{number}"
    finally:
        os.close(read)
        server.terminate()
        server.wait(10)


def windows(display: str) -> str:
    return subprocess.run(
        ["xwininfo", "-root", "-tree", "-display", display],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def test_the_live_window_shows_the_scene_at_10_frames_per_second(display, cam, tmp_path):
    """The window streams the simulated camera: its title says >= 10 frames/s drawn,
    the screenshot shows the simulator's scene (a bright spot on a ripple) where the
    image is, and nothing is written."""
    # what the scene looks like, from a camera of this process (the simulator is the same)
    cam.roi.set(ROI).wait(5)
    reference = cam.snap().astype(np.float32)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPHYD_PVCAM", "MPL"))}
    env.update(DISPLAY=display, OPHYD_PVCAM_DATA=str(data))
    command = [sys.executable, "-m", "ophyd_pvcam.cli", "live", "--camera", "sim"]
    command += ["--roi", ",".join(map(str, ROI)), "--exposure", "0.005"]
    viewer = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        best, found, deadline = 0.0, None, time.monotonic() + 90
        while time.monotonic() < deadline and best < 10 and viewer.poll() is None:
            match = TITLE.search(windows(display))
            if match:
                found = match
                best = max(best, float(match.group(1)))
            time.sleep(0.25)  # polling the X server for the title, with a deadline
        assert found is not None, f"no live window appeared: {viewer.stderr.read()[-2000:]}"
        assert best >= 10, f"the title never reported 10 frames/s shown: {found.group(0)}"
        assert float(found.group(2)) > 0 and int(found.group(3)) == 0  # delivered, none lost
        width, height, left, top = (int(found.group(i)) for i in range(4, 8))

        from PIL import ImageGrab

        shot = ImageGrab.grab(xdisplay=display).crop((left, top, left + width, top + height))
        shot.save(tmp_path / "live-window.png")  # to look at when this fails
        pixels = np.asarray(shot.convert("RGB")).astype(np.int16)
        assert_shows_the_scene(pixels, reference)
    finally:
        # SIGTERM, not Ctrl-C's SIGINT: a test runner started in the background may pass
        # SIGINT on ignored; the view closes the same way on both
        viewer.send_signal(signal.SIGTERM)
        out, err = viewer.communicate(timeout=60)
    assert viewer.returncode == 0, err[-2000:]
    assert "live view closed:" in out
    assert not list(data.rglob("*.h5")), "the live view wrote frame files"


def assert_shows_the_scene(pixels: np.ndarray, reference: np.ndarray) -> None:
    """The image is the only grey area of the window (its background and controls are
    tinted): find it, and compare it with the scene."""
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    grey = (red == green) & (green == blue)
    top, bottom = longest_run(grey.sum(axis=1) > 200)  # rows (control outlines are short)
    assert bottom - top > 200, "no image area in the window"
    left, right = longest_run(grey[top:bottom].sum(axis=0) > 0.8 * (bottom - top))
    image = red[top:bottom, left:right].astype(np.float32)
    assert image.shape[0] > 300 and abs(image.shape[0] - image.shape[1]) <= 3  # square ROI
    assert image.std() > 30  # a picture with contrast, not a flat or blank area
    # the scene, drawn the way the window draws it, at the window's size
    low, high = contrast_limits(reference)
    expected = np.clip((reference - low) / (high - low) * 255, 0, 255)
    pick_rows = (np.arange(image.shape[0]) + 0.5) * reference.shape[0] / image.shape[0]
    pick_columns = (np.arange(image.shape[1]) + 0.5) * reference.shape[1] / image.shape[1]
    expected = expected[pick_rows.astype(int)][:, pick_columns.astype(int)]
    correlation = np.corrcoef(image.ravel(), expected.ravel())[0, 1]
    assert correlation > 0.8, f"the window does not show the scene (r = {correlation:.2f})"

    def spot(picture):  # centre of the brightest 1 % of pixels, as fractions of the image
        ys, xs = np.nonzero(picture >= np.percentile(picture, 99))
        return ys.mean() / picture.shape[0], xs.mean() / picture.shape[1]

    (y_seen, x_seen), (y_true, x_true) = spot(image), spot(expected)
    assert abs(y_seen - y_true) < 0.05 and abs(x_seen - x_true) < 0.05


def longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start, end) of the longest stretch of True."""
    best, start = (0, 0), None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            best = max(best, (start, i), key=lambda run: run[1] - run[0])
            start = None
    return best
