"""The one-page picture of the first-day check (``ophyd-pvcam check --png``): the
full-frame rates, the streams, the software triggers and the temperature, one panel
each, then every check's row and the conclusion.
"""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ._check_report import WORDS
from ._figures import FAIL_COLOR, PASS_COLOR, WARN_COLOR, finish, panel, pyplot


def check_figure(report: dict[str, Any], path: Path) -> Path:
    """Draw a first-day check report (the dict that
    ``ophyd-pvcam check --json`` saves) as
    one picture at ``path``: rates, streams, triggers and scans as panels, every check
    in a table, the verdict in the title.  Returns ``path``."""
    plt = pyplot()
    figure = plt.figure(figsize=(11.7, 16.5))  # A4 portrait, twice: readable on a screen
    grid = figure.add_gridspec(3, 2, height_ratios=[1, 1, 1.45], hspace=0.32, wspace=0.25)
    figure.subplots_adjust(left=0.07, right=0.97, top=0.92, bottom=0.02)
    checks = report.get("checks") or []
    for place, (prefix, title, draw) in zip(((0, 0), (0, 1), (1, 0), (1, 1)), _PANELS, strict=True):
        panel(figure.add_subplot(grid[place]), title, _rows(checks, prefix), draw)
    _check_table(figure.add_subplot(grid[2, :]), report)
    camera = report.get("camera") or {}
    passed = report.get("passed")
    figure.suptitle(
        f"ophyd-pvcam check: {'PASSED' if passed else 'FAILED'}\n"
        f"{camera.get('model', '?')} {camera.get('name', '')}"
        f"{' (SIMULATED)' if camera.get('simulated') else ''}, serial "
        f"{camera.get('serial_number', '?')}, firmware {camera.get('firmware_version', '?')}, "
        f"PVCAM {camera.get('pvcam_version', '?')} - {datetime.datetime.now():%Y-%m-%d %H:%M}",
        fontsize=13,
        color=PASS_COLOR if passed else FAIL_COLOR,
    )
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def _rows(checks, prefix: str) -> list[dict]:
    return [c for c in checks if c["check"].startswith(prefix) and c.get("values")]


def _color(check) -> str:
    return {"pass": PASS_COLOR, "fail": FAIL_COLOR, "warn": WARN_COLOR}[check["status"]]


def _values(rows) -> list[dict]:
    return [r["values"] for r in rows]


def _mode_bars(axes, rows, heights, texts, fontsize: float, **bar) -> None:
    """One bar per readout mode, coloured by its check's outcome, each with its text on
    top, the modes named underneath."""
    x = np.arange(len(rows))
    axes.bar(x, heights, color=[_color(r) for r in rows], **bar)
    for xi, height, text in zip(x, heights, texts, strict=True):
        axes.text(xi, height, text, ha="center", va="bottom", fontsize=fontsize)
    axes.set_xticks(x, [v["mode"].replace(" / ", "\n") for v in _values(rows)], fontsize=7)


def _rate_panel(axes, rows, title: str) -> None:
    measured = [r["values"].get("camera_fps", 0.0) for r in rows]
    expected = [r["values"]["expected_fps"] for r in rows]
    axes.scatter(
        np.arange(len(rows)),
        expected,
        marker="_",
        s=900,
        color="black",
        zorder=3,
        label="1 / readout time (the camera's own)",
    )
    _mode_bars(axes, rows, measured, [f"{m:.1f}" for m in measured], 8, label="measured")
    axes.set_ylabel("full frames per second")
    axes.set_ylim(0, max(expected + measured) * 1.3)
    finish(axes, title, legend="upper left", grid="y")


def _stream_panel(axes, rows, title: str) -> None:
    delivered = [r["values"]["frames"] for r in rows]
    texts = [f"{v['frames']}\n{v['lost']} lost\n{v['fps']:.0f} fps" for v in _values(rows)]
    _mode_bars(axes, rows, delivered, texts, 7)
    target = int(rows[0]["expected"].split()[0])
    axes.axhline(target, color="grey", linestyle=":", label=f"target {target}")
    axes.set_ylabel("frames delivered")
    axes.set_ylim(0, max([*delivered, target]) * 1.35)
    roi = rows[0]["expected"].split("(")[-1].rstrip(")")
    finish(axes, f"{title}\n{roi}", legend="upper right", grid="y")


def _trigger_panel(axes, rows, title: str) -> None:
    v = rows[0]["values"]
    latencies = v["latencies_ms"]
    axes.plot(
        range(1, len(latencies) + 1),
        latencies,
        "o-",
        color=_color(rows[0]),
        label="measured (host clock)",
    )
    axes.axhline(
        v["minimum_ms"],
        color="black",
        linestyle="--",
        label=f"exposure + readout = {v['minimum_ms']:.1f} ms:\nless would mean the "
        "exposure began before its trigger",
    )
    axes.set(xlabel="trigger", ylabel="ms")
    axes.xaxis.get_major_locator().set_params(integer=True)
    if not latencies:
        axes.set_xlim(0, 1)
        axes.text(
            0.5, v["minimum_ms"] / 2, "no frame answered a trigger", ha="center", color=FAIL_COLOR
        )
    axes.set_ylim(0, max([*latencies, v["minimum_ms"]]) * 1.4)
    finish(axes, title, legend="lower right")


def _temperature_panel(axes, rows, title: str) -> None:
    v = rows[0]["values"]
    times, temps = zip(*v["trace"], strict=True)
    axes.plot(times, temps, "o-", color=_color(rows[0]), label="sensor")
    if len(times) == 1:
        axes.set_xlim(-10, 10)
        axes.text(0, temps[0], "  one reading: not waited for", fontsize=8, va="bottom")
    axes.axhline(v["setpoint"], color="black", linestyle="--", label=f"setpoint {v['setpoint']:g}")
    if "tolerance" in v:
        axes.axhspan(
            v["setpoint"] - v["tolerance"],
            v["setpoint"] + v["tolerance"],
            color="grey",
            alpha=0.15,
            label=f"setpoint +/- {v['tolerance']:g} degC: there",
        )
    axes.set(xlabel="s since the check began waiting", ylabel="degC")
    finish(axes, f"{title}: {rows[0]['measured']}", legend="best")


_PANELS = (  # which rows each panel draws, under which title
    ("full-frame rate", "Full-frame rate per readout mode (SDK, camera clock)", _rate_panel),
    ("stream", "Streams through ophyd-pvcam: frames lost per mode", _stream_panel),
    ("software triggers", "Software triggers: trigger to end of frame", _trigger_panel),
    ("temperature", "Temperature", _temperature_panel),
)


def _check_table(axes, report) -> None:
    axes.axis("off")
    checks = report.get("checks") or []
    axes.set_title("Checks", fontsize=11, loc="left")
    line = 0.025  # of the axes' height, for one line of 8 pt text
    y = 0.99
    for c in checks:
        text = c["measured"] if c["status"] == "pass" else (c["detail"] or c["measured"])
        wrapped = textwrap.wrap(text, 105)[:3]
        axes.text(
            0.0,
            y,
            WORDS[c["status"]],
            color=_color(c),
            fontweight="bold",
            fontsize=8.5,
            va="top",
            transform=axes.transAxes,
        )
        axes.text(0.065, y, c["check"], fontsize=8.5, va="top", transform=axes.transAxes)
        axes.text(0.385, y, "\n".join(wrapped), fontsize=8, va="top", transform=axes.transAxes)
        y -= line * len(wrapped) + 0.01
    failure = report.get("first_failure")
    notes = sum(c["status"] == "warn" for c in checks)
    if failure:
        end = f"FAILED - first failure: {failure}"
    else:
        end = "PASSED: every check passed" + (f" ({notes} NOTE: reported)" if notes else "")
    axes.text(
        0.0,
        y - 0.01,
        "\n".join(textwrap.wrap(end, 120)),
        fontsize=10,
        fontweight="bold",
        color=FAIL_COLOR if failure else PASS_COLOR,
        va="top",
        transform=axes.transAxes,
    )
