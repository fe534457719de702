"""Regenerate the documentation's pictures from the real program, on the simulator.

    python docs/pictures/make_pictures.py            # all of them, about a minute
    python docs/pictures/make_pictures.py --only terminal

Writes into ``docs/_static/pictures/``:

- ``terminal-progress.png``, ``terminal-stall.png``: a terminal in which a script
  (``SESSION`` below) runs a fly scan to its end, then one the simulator stalls after
  frame 85: the progress bar stuck at 85, then the diagnosis, as the program printed
  them.  The script runs under a pseudo-terminal
  (so the progress bars draw as they do for a user) and the screen is rebuilt from what
  it wrote, then drawn with a monospaced font;
- ``check.png``: the one-page report of ``ophyd-pvcam check`` (short streams, no wait for
  the sensor to cool);
- ``probe.png``: the one-page report of ``ophyd-pvcam probe --inject-stall 85``;
- ``live-window.png``: the window of ``ophyd-pvcam live``, on a virtual X display
  (needs ``Xvfb`` and ``xwininfo``).

Every run uses a temporary data folder, removed afterwards.  Nothing here is drawn by
hand: rerun it after a change to what these commands print.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE.parent / "_static" / "pictures"
COLUMNS, ROWS = 120, 40

SESSION = """\
import bluesky.plans as bp

import ophyd_pvcam.sim as sim
from ophyd_pvcam import FrameStallError
from ophyd_pvcam.device import make_camera, make_run_engine

RE, catalog = make_run_engine()
cam = make_camera("cam", announce=None)
cam.roi.set((768, 768, 512, 512)).wait(10)
cam.exposure_time.set(0.01).wait(10)
cam.num_frames.set(120).wait(10)
RE(bp.fly([cam]))
sim.inject_fault("stall", after_frames=85)
cam.num_frames.set(500).wait(10)
try:
    RE(bp.fly([cam]))
except FrameStallError as stall:
    print(stall)
cam.close()
"""


def environment(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPHYD_PVCAM_", "TILED_"))}
    env.update(
        OPHYD_PVCAM_SIM="1",
        OPHYD_PVCAM_DATA=str(data),
        OPHYD_PVCAM_CONFIG=str(data / "no-config.toml"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        MPLBACKEND="Agg",
        COLUMNS=str(COLUMNS),
        LINES=str(ROWS),
        TERM="xterm",
        **extra,
    )
    return env


def run_in_terminal(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> bytes:
    """What ``command`` writes to a terminal of COLUMNS x ROWS, as bytes."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd
    )
    os.close(follower)
    written = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the follower closed: the process ended
                    break
                if not chunk:
                    break
                written += chunk
            elif process.poll() is not None:
                break
        else:
            raise TimeoutError(f"{command} did not finish within {timeout} s")
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
        process.wait(10)
    return bytes(written)


def screen(output: bytes) -> list[str]:
    """The lines a terminal shows after ``output``: carriage returns, newlines, cursor up
    and erase-line (what progress bars use); colours and other sequences dropped."""
    lines = [""]
    row, col = 0, 0
    text = output.decode("utf-8", "replace")
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r\n|\r|\n)", text):
        if not token:
            continue
        if token.startswith("\x1b["):
            code, argument = token[-1], token[2:-1]
            if code == "A":  # cursor up
                row = max(0, row - int(argument or 1))
            elif code == "K":  # erase to the end of the line
                lines[row] = lines[row][:col]
            continue
        if token == "\r":
            col = 0
            continue
        if token in ("\n", "\r\n"):
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append("")
            continue
        token = token.replace("\t", "    ")
        line = lines[row].ljust(col)
        lines[row] = line[:col] + token + line[col + len(token) :]
        col += len(token)
    wrapped = []  # a terminal wraps what is longer than its width
    for line in lines:
        line = line.rstrip()
        wrapped += [line[i : i + COLUMNS] for i in range(0, max(len(line), 1), COLUMNS)]
    while wrapped and not wrapped[-1]:
        wrapped.pop()
    return wrapped


def draw(lines: list[str], path: Path, title: str) -> None:
    """A terminal window's picture of ``lines``."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("DejaVuSansMono.ttf", 15)
    left, top, right, bottom = font.getbbox("M")
    cell_w, cell_h = right - left, int((bottom - top) * 1.45)
    bar, margin = 30, 14
    width = COLUMNS * cell_w + 2 * margin
    height = bar + len(lines) * cell_h + 2 * margin
    image = Image.new("RGB", (width, height), "#1e1e1e")
    pen = ImageDraw.Draw(image)
    pen.rectangle((0, 0, width, bar), fill="#3c3c3c")
    for i, colour in enumerate(("#ff5f56", "#ffbd2e", "#27c93f")):
        pen.ellipse((12 + 20 * i, 9, 24 + 20 * i, 21), fill=colour)
    pen.text((width // 2, bar // 2), title, fill="#d0d0d0", font=font, anchor="mm")
    for n, line in enumerate(lines):
        colour = "#e5e5e5"
        if line.startswith("$ "):
            colour = "#8ae234"
        elif "frames stopped" in line or "Error" in line:
            colour = "#ff8080"
        pen.text((margin, bar + margin + n * cell_h), line, fill=colour, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def terminal_stall(work: Path) -> list[Path]:
    script = work / "stall.py"
    script.write_text(SESSION)
    output = run_in_terminal(
        [sys.executable, script.name], environment(work / "data"), work, timeout=120
    )
    prompt = f"$ python {script.name}"
    # the progress bar is erased when a scan ends: the screen as it was just before the
    # stalled scan's summary line shows it stuck at frame 85
    end = output.index(b"cam: fly scan, 85 frames")
    stuck = output[: output.rindex(b"frames/s]", 0, end) + len(b"frames/s]")]
    progress = OUT / "terminal-progress.png"
    draw([prompt, *screen(stuck)], progress, "a fly scan, then one whose frames stop")
    stall = OUT / "terminal-stall.png"
    draw([prompt, *screen(output), "$"], stall, "the plan fails with a diagnosis")
    return [progress, stall]


def report(work: Path, name: str, arguments: list[str]) -> list[Path]:
    path = OUT / f"{name}.png"
    result = subprocess.run(
        [sys.executable, "-m", "ophyd_pvcam.cli", *arguments, "--png", str(path)],
        env=environment(work / "data"),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ophyd-pvcam {' '.join(arguments)}:\n{result.stderr[-3000:]}")
    return [path]


LIVE_OPTIONS = ["--roi", "768,640,512,512", "--exposure", "0.01"]
LIVE_TITLE = re.compile(
    r'"cam live: ([\d.]+) frames/s shown[^"]*":.*?\s(\d+)x(\d+)\+(-?\d+)\+(-?\d+)'
)


def live_window(work: Path) -> list[Path]:
    """``ophyd-pvcam live`` on a virtual X display of its own (Xvfb), photographed once
    its title reports frames drawn."""
    from PIL import ImageGrab

    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x900x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    viewer = None
    try:
        ready, _, _ = select.select([read], [], [], 30)
        number = os.read(read, 64).decode().strip() if ready else ""
        if not number:
            raise RuntimeError("Xvfb did not start within 30 s")
        display = f":{number}"
        env = environment(work / "data", DISPLAY=display)
        viewer = subprocess.Popen(
            [sys.executable, "-m", "ophyd_pvcam.cli", "live", "--camera", "sim", *LIVE_OPTIONS],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        found, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline and viewer.poll() is None:
            tree = subprocess.run(
                ["xwininfo", "-root", "-tree", "-display", display],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            match = LIVE_TITLE.search(tree)
            if match and float(match.group(1)) >= 10:
                found = match
                break
            time.sleep(0.25)  # polling the X server for the title, with a deadline
        if found is None:
            raise RuntimeError(f"no live window drawing frames: {viewer.stderr.read()[-2000:]}")
        width, height, left, top = (int(found.group(i)) for i in range(2, 6))
        path = OUT / "live-window.png"
        shot = ImageGrab.grab(xdisplay=display).crop((left, top, left + width, top + height))
        shot.save(path, optimize=True)
        return [path]
    finally:
        if viewer is not None:
            viewer.send_signal(signal.SIGTERM)
            viewer.communicate(timeout=60)
        os.close(read)
        server.terminate()
        server.wait(10)


PICTURES = {
    "live": live_window,
    "terminal": terminal_stall,
    "check": lambda work: report(
        work,
        "check",
        ["check", "--camera", "sim", "--stream-frames", "100", "--temperature-wait", "0"],
    ),
    "probe": lambda work: report(
        work, "probe", ["probe", "--camera", "sim", "--inject-stall", "85"]
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(PICTURES))
    args = parser.parse_args()
    for name in args.only or PICTURES:
        work = Path(tempfile.mkdtemp(prefix="pv-"))  # short: paths show in the pictures
        try:
            started = time.monotonic()
            paths = PICTURES[name](work)
            for path in paths:
                print(f"{path.relative_to(ROOT)}  ({time.monotonic() - started:.0f} s)")
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
