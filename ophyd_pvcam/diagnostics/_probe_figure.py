"""The one-page picture of the probe (``ophyd-pvcam probe --png``): ophyd-pvcam's own fly
scans, the buffer strategies, the controlled pairs and the limit streams, one panel
each, then the hypotheses and the verdict in words.
"""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path
from typing import Any

from ._figures import (
    FAIL_COLOR,
    FAILED,
    MARKERS,
    PASS_COLOR,
    SERIES,
    STALLED,
    WARN_COLOR,
    finish,
    not_run,
    panel,
    pyplot,
)


def _legend_markers(axes) -> None:
    """A legend entry for 'stalled' next to the series."""
    axes.plot([], [], label="stalled (frames stopped)", **STALLED)


def _delivered_by_buffer(axes, title: str, target: int, *, legend: str) -> None:
    """The axes of frames delivered against buffer size, with the target dotted."""
    axes.axhline(target, color="grey", linestyle=":", label="target")
    _legend_markers(axes)
    axes.set(xlabel="circular buffer (frames)", ylabel="frames delivered")
    axes.set_ylim(0, target * 1.15)
    finish(axes, title, legend=legend, legend_size=7)


def probe_figure(report: dict[str, Any], path: Path) -> Path:
    """Draw a probe report (the dict that ``ophyd-pvcam probe --json``
    saves) as one picture
    at ``path``, a panel per stage of the probe.  Returns ``path``."""
    plt = pyplot()
    figure = plt.figure(figsize=(17, 10))
    grid = figure.add_gridspec(3, 4, height_ratios=[1, 0.62, 0.5], hspace=0.42, wspace=0.3)
    figure.subplots_adjust(left=0.045, right=0.985, top=0.89, bottom=0.02)
    options = report.get("options") or {}
    panel(
        figure.add_subplot(grid[0, 0]),
        "1. ophyd-pvcam fly scans (pyvcam)",
        report.get("device") or [],
        _fly_panel,
    )
    panel(
        figure.add_subplot(grid[0, 1]),
        "2. no-unlock: buffer strategies (SDK)",
        report.get("sdk") or [],
        lambda axes, rows, title: _strategy_panel(axes, rows, title, options),
    )
    _pair_panel(figure.add_subplot(grid[0, 2]), report)
    panel(
        figure.add_subplot(grid[0, 3]),
        "5. byte-limit / frame-limit (SDK)",
        (report.get("experiments") or {}).get("limits") or [],
        _limit_panel,
    )
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


def _fly_panel(axes, rows, title: str) -> None:
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
    title = f"{title}\nROI {width}x{height} at ({x}, {y})"
    _delivered_by_buffer(axes, title, rows[0]["target"], legend="lower right")


def _strategy_panel(axes, rows, title: str, options: dict) -> None:
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
    title = f"{title}\nROI {width}x{height}, CIRC_NO_OVERWRITE vs OVERWRITE"
    _delivered_by_buffer(axes, title, rows[0]["target"], legend="center right")


def _limit_panel(axes, runs, title: str) -> None:
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
    axes.set(xlabel="frame size (log scale)", ylabel="last frame number")
    title = f"{title}\nlast frame of each stream, by frame size"
    finish(axes, title, legend="upper right", legend_size=7)


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
        not_run(axes, title)
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
    finish(axes, title, legend=None, grid="y")


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
