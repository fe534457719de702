"""What the one-page pictures of the probe and of the first-day check share: how they
draw (matplotlib without a display), their colours and markers, and how a panel with
nothing to show says so.

Both pictures read only the JSON-able reports (``Probe.report``,
``FirstDayCheck.as_dict()``), so a picture can be redrawn from a saved file.  Stalled
points are drawn apart from completed ones (a red cross against a filled dot), every
panel says what it used (ROI, frame size, exposure), and each page ends with its
conclusion in words.  The pages themselves: ``_probe_figure``, ``_check_figure``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

STALLED = {"marker": "X", "color": "#c0392b", "markersize": 10, "linestyle": "none"}
FAILED = {"marker": "s", "color": "black", "markersize": 7, "linestyle": "none"}
PASS_COLOR, FAIL_COLOR, WARN_COLOR = "#2e7d32", "#c0392b", "#b7791f"
SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P"]


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(
    axes: Any, title: str, *, legend: str | None, legend_size: float = 8, grid: str = "both"
) -> None:
    """Every panel's title (at the left), its legend (``legend``: where; None: none) and a
    light grid (``grid``: along which axes)."""
    axes.set_title(title, fontsize=10, loc="left")
    if legend is not None:
        axes.legend(fontsize=legend_size, loc=legend)
    axes.grid(alpha=0.3, axis=grid)


def panel(
    axes: Any, title: str, rows: Sequence[Any], draw: Callable[[Any, Any, str], None]
) -> None:
    """``draw(axes, rows, title)``; with no rows, a panel saying it was not run."""
    if rows:
        draw(axes, rows, title)
    else:
        not_run(axes, title)


def not_run(axes: Any, title: str, why: str = "not run") -> None:
    """A panel with nothing to draw, saying why."""
    axes.set_title(title, fontsize=10, loc="left")
    axes.text(0.5, 0.5, why, ha="center", va="center", color="grey", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])
