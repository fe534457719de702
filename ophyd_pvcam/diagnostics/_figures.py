"""One-page pictures of the probe and of the first-day check, for a logbook.

Both read only the JSON-able reports (``probe.Probe.report``,
``check.FirstDayCheck.as_dict()``), so a picture can be redrawn from a saved file.
Stalled points are drawn apart from completed ones (a red cross against a filled
dot), every panel says what it used (ROI, frame size, exposure), and each page ends
with its conclusion in words.
"""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

STALLED = {"marker": "X", "color": "#c0392b", "markersize": 10, "linestyle": "none"}
FAILED = {"marker": "s", "color": "black", "markersize": 7, "linestyle": "none"}
PASS_COLOR, FAIL_COLOR, WARN_COLOR = "#2e7d32", "#c0392b", "#b7791f"
WORDS = {"pass": "PASS", "fail": "FAIL", "warn": "NOTE"}
SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _not_run(axes, title: str, why: str = "not run") -> None:
    axes.set_title(title, fontsize=10, loc="left")
    axes.text(0.5, 0.5, why, ha="center", va="center", color="grey", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def _legend_markers(axes) -> None:
    """A legend entry for 'stalled' next to the series."""
    axes.plot([], [], label="stalled (frames stopped)", **STALLED)


# ---- the probe ------------------------------------------------------------------------------


def probe_figure(report: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    figure = plt.figure(figsize=(17, 10))
    grid = figure.add_gridspec(3, 4, height_ratios=[1, 0.62, 0.5], hspace=0.42, wspace=0.3)
    figure.subplots_adjust(left=0.045, right=0.985, top=0.89, bottom=0.02)
    _fly_panel(figure.add_subplot(grid[0, 0]), report)
    _strategy_panel(figure.add_subplot(grid[0, 1]), report)
    _pair_panel(figure.add_subplot(grid[0, 2]), report)
    _limit_panel(figure.add_subplot(grid[0, 3]), report)
    _hypotheses_panel(figure.add_subplot(grid[1, :]), report)
    _verdict_panel(figure.add_subplot(grid[2, :]), report)
    camera = report.get("camera") or {}
    figure.suptitle(
        f"Why do frames stop? Stall probe of {camera.get('model', '?')} {camera.get('name', '')}"
        f"{' (SIMULATED)' if camera.get('simulated') else ''}, serial "
        f"{camera.get('serial_number', '?')}, PVCAM {camera.get('pvcam_version', '?')} - "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}"
        + (f"\ninjected: {report['injected']}" if report.get("injected") else ""),
        fontsize=12,
    )
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _fly_panel(axes, report) -> None:
    rows = report.get("device") or []
    title = "1. ophyd-pvcam fly scans (pyvcam)"
    if not rows:
        _not_run(axes, title)
        return
    x, y, width, height = rows[0]["roi"]
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(f"{row['port']}, {row['exposure_s'] * 1e3:g} ms", []).append(row)
    for i, (label, group) in enumerate(groups.items()):
        group.sort(key=lambda r: r["buffer_frames"])
        axes.plot(
            [r["buffer_frames"] for r in group],
            [r["delivered"] for r in group],
            marker=MARKERS[i % 6],
            color=SERIES[i % 6],
            markersize=8 - i,
            label=label,
        )
        for r in group:
            style = STALLED if r["outcome"] == "stalled" else FAILED
            if r["outcome"] != "complete":
                axes.plot([r["buffer_frames"]], [r["delivered"]], **style)
            if r["lost"]:
                axes.annotate(
                    f"{r['lost']} lost",
                    (r["buffer_frames"], r["delivered"]),
                    textcoords="offset points",
                    xytext=(4, -12),
                    fontsize=7,
                    color=SERIES[i % 6],
                )
    axes.axhline(rows[0]["target"], color="grey", linestyle=":", label="target")
    _legend_markers(axes)
    axes.set_title(f"{title}\nROI {width}x{height} at ({x}, {y})", fontsize=10, loc="left")
    axes.set(xlabel="circular buffer (frames)", ylabel="frames delivered")
    axes.set_ylim(0, rows[0]["target"] * 1.15)
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(alpha=0.3)


def _strategy_panel(axes, report) -> None:
    rows = report.get("sdk") or []
    title = "2. no-unlock: buffer strategies (SDK)"
    if not rows:
        _not_run(axes, title)
        return
    options = report.get("options") or {}
    _, _, width, height = options.get("roi", (0, 0, 0, 0))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    for i, name in enumerate(strategies):
        group = sorted((r for r in rows if r["strategy"] == name), key=lambda r: r["buffer_frames"])
        axes.plot(
            [r["buffer_frames"] for r in group],
            [r["delivered"] for r in group],
            marker=MARKERS[i],
            color=SERIES[i],
            markersize=9 - 2 * i,
            label=name,
        )
        for r in group:
            if r["stalled"]:
                axes.plot([r["buffer_frames"]], [r["delivered"]], **STALLED)
    buffers = sorted({r["buffer_frames"] for r in rows})
    axes.plot(buffers, buffers, "k--", linewidth=0.8, label="delivered = buffer size")
    axes.axhline(rows[0]["target"], color="grey", linestyle=":", label="target")
    _legend_markers(axes)
    axes.set_title(
        f"{title}\nROI {width}x{height}, CIRC_NO_OVERWRITE vs OVERWRITE", fontsize=10, loc="left"
    )
    axes.set(xlabel="circular buffer (frames)", ylabel="frames delivered")
    axes.set_ylim(0, rows[0]["target"] * 1.15)
    axes.legend(fontsize=7, loc="center right")
    axes.grid(alpha=0.3)


def _limit_panel(axes, report) -> None:
    runs = (report.get("experiments") or {}).get("limits") or []
    title = "5. byte-limit / frame-limit (SDK)"
    if not runs:
        _not_run(axes, title)
        return
    buffers = sorted({r["buffer_frames"] for r in runs})
    for i, buffer in enumerate(buffers):
        group = sorted(
            (r for r in runs if r["buffer_frames"] == buffer), key=lambda r: r["frame_bytes"]
        )
        sizes = [r["frame_bytes"] / (1 << 20) for r in group]
        axes.plot(
            sizes,
            [r["last_frame"] for r in group],
            marker=MARKERS[i],
            color=SERIES[i],
            markersize=9 - 2 * i,
            linestyle="none",
            label=f"buffer {buffer}",
        )
        for r, size in zip(group, sizes, strict=True):
            if not r["stalled"] and i == 0:
                axes.annotate(
                    f"all {r['target']} streamed\n({r['target'] * r['frame_bytes'] / (1 << 30):.2f}"
                    " GiB), no stop",
                    (size, r["last_frame"]),
                    textcoords="offset points",
                    xytext=(0, -26),
                    ha="center",
                    fontsize=7,
                    color="dimgrey",
                )
            if r["stalled"]:
                axes.plot([size], [r["last_frame"]], **STALLED)
                if i == 0:
                    largest = r["frame_bytes"] == max(q["frame_bytes"] for q in runs)
                    axes.annotate(
                        f"stopped after {r['last_frame']}\n({r['stop_bytes'] / (1 << 20):.0f} MiB)",
                        (size, r["last_frame"]),
                        textcoords="offset points",
                        xytext=(-8, 8) if largest else (8, 8),
                        ha="right" if largest else "left",
                        fontsize=7,
                        color=STALLED["color"],
                    )
    stopped = [r for r in runs if r["stalled"] and r["last_frame"]]
    sizes = sorted({r["frame_bytes"] / (1 << 20) for r in runs})
    if stopped:
        first = max(stopped, key=lambda r: r["frame_bytes"])
        frames, mib = first["last_frame"], first["frame_bytes"] / (1 << 20)
        span = [sizes[0] * 0.8, sizes[-1] * 1.25]
        axes.plot(
            span,
            [frames, frames],
            color="grey",
            linestyle=":",
            label=f"same frame ({frames}): frame limit",
        )
        axes.plot(
            span,
            [frames * mib / s for s in span],
            color="grey",
            linestyle="--",
            label=f"same bytes ({frames * mib:.0f} MiB): byte limit",
        )
    _legend_markers(axes)
    axes.set_xscale("log")
    axes.set_xticks(sizes, [f"{_shape_of(runs, s)}\n{s:g} MiB" for s in sizes])
    axes.minorticks_off()
    axes.set_xlim(sizes[0] / 1.6, sizes[-1] * 1.6)
    top = max(max(r["last_frame"] for r in runs), max(r["target"] for r in runs))
    axes.set_ylim(0, top * 1.25)
    axes.set_title(f"{title}\nlast frame of each stream, by frame size", fontsize=10, loc="left")
    axes.set(xlabel="frame size (log scale)", ylabel="last frame number")
    axes.legend(fontsize=7, loc="upper right")
    axes.grid(alpha=0.3)


def _shape_of(runs, mib: float) -> str:
    for r in runs:
        if r["frame_bytes"] / (1 << 20) == mib:
            return f"{r['width']}x{r['height']}"
    return ""


def _pair_panel(axes, report) -> None:
    experiments = report.get("experiments") or {}
    pairs = [
        (
            "param-polling",
            experiments.get("param_polling") or [],
            "no\nreads",
            "temperature\nreads",
        ),
        (
            "callback-reregistration",
            experiments.get("callback_reregistration") or [],
            "registered\nonce",
            "registered\ntwice",
        ),
    ]
    title = "3-4. controlled pairs (SDK)\nthe suspected cause absent / present"
    if not any(runs for _, runs, _, _ in pairs):
        _not_run(axes, title)
        return
    positions, labels = [], []
    for i, (name, runs, without, with_) in enumerate(pairs):
        for j, (run, label) in enumerate(zip(runs, (without, with_), strict=False)):
            x = 3 * i + j
            stalled = run["stalled"]
            axes.bar(
                x,
                run["delivered"],
                color=FAIL_COLOR if stalled else SERIES[0],
                hatch="//" if stalled else None,
                edgecolor="white",
            )
            axes.text(
                x,
                run["delivered"],
                f"{run['delivered']}" + (" stalled" if stalled else ""),
                ha="center",
                va="bottom",
                fontsize=7,
            )
            positions.append(x)
            labels.append(f"{label}")
        axes.text(
            3 * i + 0.5,
            -0.22,
            name,
            ha="center",
            va="top",
            fontsize=8,
            fontweight="bold",
            transform=axes.get_xaxis_transform(),
        )
        if runs:
            axes.hlines(runs[0]["target"], 3 * i - 0.4, 3 * i + 1.4, color="grey", linestyle=":")
    axes.set_xticks(positions, labels, fontsize=7)
    axes.set_ylabel("frames delivered (dotted: target)")
    axes.set_title(title, fontsize=10, loc="left")
    axes.grid(alpha=0.3, axis="y")


def _hypotheses_panel(axes, report) -> None:
    axes.axis("off")
    hypotheses = report.get("hypotheses") or []
    axes.set_title("Hypotheses: one controlled experiment each", fontsize=10, loc="left")
    if not hypotheses:
        axes.text(0, 0.5, "not tested (--no-sdk)", color="grey")
        return
    words = {
        True: ("REPRODUCED", FAIL_COLOR),
        False: ("not reproduced", PASS_COLOR),
        None: ("not tested", "grey"),
    }
    y = 0.97
    for h in hypotheses:
        word, color = words[h["reproduced"]]
        if h["hypothesis"] == "no-unlock" and h["reproduced"]:
            word, color = "REPRODUCED\n(as documented)", WARN_COLOR
        axes.text(
            0.0,
            y,
            h["hypothesis"],
            fontsize=9,
            fontweight="bold",
            va="top",
            transform=axes.transAxes,
        )
        axes.text(
            0.13,
            y,
            word,
            fontsize=9,
            color=color,
            fontweight="bold",
            va="top",
            transform=axes.transAxes,
        )
        evidence = textwrap.wrap(h["evidence"], 190)[:3]
        axes.text(0.22, y, "\n".join(evidence), fontsize=8, va="top", transform=axes.transAxes)
        y -= 0.2


def _verdict_panel(axes, report) -> None:
    axes.axis("off")
    verdict = report.get("verdict")
    text = verdict["text"] if verdict else "No verdict: the SDK experiments were not run."
    first, *rest = text.splitlines()
    axes.text(
        0,
        1,
        "\n".join(textwrap.wrap(first, 150)),
        fontsize=10.5,
        fontweight="bold",
        va="top",
        transform=axes.transAxes,
    )
    lines = []
    for line in rest:
        indent = "    " if line.startswith("- ") else ""
        lines += textwrap.wrap(line, 200, subsequent_indent=indent) or [""]
    axes.text(
        0,
        0.78 - 0.14 * (len(textwrap.wrap(first, 150)) - 1),
        "\n".join(lines),
        fontsize=8.5,
        va="top",
        transform=axes.transAxes,
    )


# ---- the first-day check ---------------------------------------------------------------------


def check_figure(report: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    figure = plt.figure(figsize=(11.7, 16.5))  # A4 portrait, twice: readable on a screen
    grid = figure.add_gridspec(3, 2, height_ratios=[1, 1, 1.45], hspace=0.32, wspace=0.25)
    figure.subplots_adjust(left=0.07, right=0.97, top=0.92, bottom=0.02)
    checks = report.get("checks") or []
    _rate_panel(figure.add_subplot(grid[0, 0]), checks)
    _stream_panel(figure.add_subplot(grid[0, 1]), checks)
    _trigger_panel(figure.add_subplot(grid[1, 0]), checks)
    _temperature_panel(figure.add_subplot(grid[1, 1]), checks)
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


def _mode_labels(rows) -> list[str]:
    return [r["values"]["mode"].replace(" / ", "\n") for r in rows]


def _rate_panel(axes, checks) -> None:
    rows = _rows(checks, "full-frame rate")
    title = "Full-frame rate per readout mode (SDK, camera clock)"
    if not rows:
        _not_run(axes, title)
        return
    x = np.arange(len(rows))
    measured = [r["values"].get("camera_fps", 0.0) for r in rows]
    expected = [r["values"]["expected_fps"] for r in rows]
    axes.bar(x, measured, color=[_color(r) for r in rows], label="measured")
    axes.scatter(
        x,
        expected,
        marker="_",
        s=900,
        color="black",
        zorder=3,
        label="1 / readout time (the camera's own)",
    )
    for xi, value in zip(x, measured, strict=True):
        axes.text(xi, value, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
    axes.set_xticks(x, _mode_labels(rows), fontsize=7)
    axes.set_ylabel("full frames per second")
    axes.set_ylim(0, max(expected + measured) * 1.3)
    axes.set_title(title, fontsize=10, loc="left")
    axes.legend(fontsize=8, loc="upper left")
    axes.grid(alpha=0.3, axis="y")


def _stream_panel(axes, checks) -> None:
    rows = _rows(checks, "stream")
    title = "Streams through ophyd-pvcam: frames lost per mode"
    if not rows:
        _not_run(axes, title)
        return
    x = np.arange(len(rows))

    delivered = [r["values"]["frames"] for r in rows]
    axes.bar(x, delivered, color=[_color(r) for r in rows])
    for xi, r in zip(x, rows, strict=True):
        v = r["values"]
        axes.text(
            xi,
            v["frames"],
            f"{v['frames']}\n{v['lost']} lost\n{v['fps']:.0f} fps",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    target = int(rows[0]["expected"].split()[0])
    axes.axhline(target, color="grey", linestyle=":", label=f"target {target}")
    axes.set_xticks(x, _mode_labels(rows), fontsize=7)
    axes.set_ylabel("frames delivered")
    axes.set_ylim(0, max([*delivered, target]) * 1.35)
    axes.set_title(
        f"{title}\n{rows[0]['expected'].split('(')[-1].rstrip(')')}", fontsize=10, loc="left"
    )
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3, axis="y")


def _trigger_panel(axes, checks) -> None:
    rows = _rows(checks, "software triggers")
    title = "Software triggers: trigger to end of frame"
    if not rows:
        _not_run(axes, title)
        return
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
    axes.set_title(title, fontsize=10, loc="left")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)


def _temperature_panel(axes, checks) -> None:
    rows = _rows(checks, "temperature")
    title = "Temperature"
    if not rows:
        _not_run(axes, title)
        return
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
    axes.set_title(f"{title}: {rows[0]['measured']}", fontsize=10, loc="left")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)


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
