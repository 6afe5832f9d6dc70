"""Pictures of evaluation results, where a plot reads better than a table: `svd3d eval orbit / video / asset
--plot FILE.png`. Each result class builds its panels (`LinePanel`, `BarPanel`, `ScatterPanel`) from its own
numbers; `write_plot` draws them side by side with matplotlib (its Agg backend, imported only here and only when
a plot is written: the optional extra `pip install -e ".[plot]"`) and writes the PNG atomically.

A PNG svd3d wrote says so in its `Software` text field, so a later --plot may replace it and nothing else
(svd3d.outputs.check_file_replaceable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svd3d import outputs
from svd3d.errors import SVD3DError
from svd3d.version import __version__

PLOT_HINT = 'pip install -e ".[plot]" (or pip install matplotlib)'
PANEL_SIZE = (5.0, 3.6)  # inches per panel; at DPI a panel is 500 x 360 pixels
DPI = 100
PSNR_CEILING = 60.0  # dB: a perfect view's PSNR is inf; it is drawn here
# the same colour for a method in every plot
COLOURS = {
    "model": "#c0392b",
    "repeat-input": "#7f8c8d",
    "mean-image": "#2980b9",
    "field": "#c0392b",
    "hull": "#e67e22",
    "field-gt": "#27ae60",
}


@dataclass(frozen=True)
class Line:
    label: str
    x: np.ndarray  # (K,)
    y: np.ndarray  # (K,); NaN leaves a gap
    points: tuple[np.ndarray, np.ndarray] | None = None  # (x, y) of the single measurements behind the line


@dataclass(frozen=True)
class LinePanel:
    title: str
    xlabel: str
    ylabel: str
    lines: list[Line]
    xticks: list[float] | None = None


@dataclass(frozen=True)
class BarPanel:
    title: str
    ylabel: str
    groups: list[str]  # one group of bars per item (object), left to right
    bars: dict[str, list[float | None]]  # series (its colour's key) -> a value per group (None: marked "failed")
    legend: dict[str, str] = field(default_factory=dict)  # series -> its name in the legend [the series]


@dataclass(frozen=True)
class ScatterPanel:
    title: str
    xlabel: str
    ylabel: str
    x: np.ndarray
    y: np.ndarray
    diagonal: bool = True  # draw y = x
    labels: list[str] = field(default_factory=list)


Panel = LinePanel | BarPanel | ScatterPanel


def check_plot(path: str | Path) -> Path:
    """Before any work: `path` is a .png svd3d may write (absent, or a plot svd3d wrote) and matplotlib is
    installed. SVD3DError naming the fix if not."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SVD3DError(f"--plot {path}: a plot is written as PNG; give a .png name, e.g. {path.with_suffix('.png')}")
    outputs.check_file_replaceable(path)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SVD3DError(f"--plot needs matplotlib, which is not installed: {PLOT_HINT}") from None
    return path


def write_plot(path: str | Path, title: str, panels: list[Panel], what: str) -> Path:
    """Draw `panels` in a row under `title` and write them to the PNG `path` atomically: len(panels) x
    PANEL_SIZE inches at DPI (500 x 360 pixels a panel). `what` names the command in the PNG's Software field."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = check_plot(path)
    fig = Figure(figsize=(PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        {LinePanel: _lines, BarPanel: _bars, ScatterPanel: _scatter}[type(panel)](ax, panel)
    fig.suptitle(title, fontsize=10)
    with outputs.atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": f"svd3d {__version__} {what}"})
    return path


def _lines(ax, panel: LinePanel) -> None:
    for line in panel.lines:
        colour = COLOURS.get(line.label)
        if line.points is not None:
            ax.scatter(*line.points, s=6, alpha=0.25, color=colour, linewidths=0)
        ax.plot(line.x, line.y, marker="o", markersize=3, linewidth=1.5, color=colour, label=line.label)
    _frame(ax, panel.title, panel.xlabel, panel.ylabel)
    if panel.xticks is not None:
        ax.set_xticks(panel.xticks)
    ax.legend(fontsize=8)


def _bars(ax, panel: BarPanel) -> None:
    n, k = len(panel.groups), len(panel.bars)
    width = 0.8 / k
    for j, (label, values) in enumerate(panel.bars.items()):
        x = np.arange(n) + (j - (k - 1) / 2) * width
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x, heights, width, label=panel.legend.get(label, label), color=COLOURS.get(label))
        for xi, v in zip(x, values, strict=True):
            if v is None:
                ax.text(xi, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(n), panel.groups, rotation=30 if n > 4 else 0, ha="right" if n > 4 else "center")
    _frame(ax, panel.title, "", panel.ylabel)
    ax.legend(fontsize=8)


def _scatter(ax, panel: ScatterPanel) -> None:
    ax.scatter(panel.x, panel.y, s=14, color=COLOURS["model"])
    if panel.diagonal and len(panel.x):
        lo, hi = float(min(panel.x.min(), panel.y.min())), float(max(panel.x.max(), panel.y.max()))
        ax.plot([lo, hi], [lo, hi], linestyle="--", color="#555555", linewidth=1, label="y = x")
        ax.legend(fontsize=8)
    _frame(ax, panel.title, panel.xlabel, panel.ylabel)


def _frame(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def capped_psnr(values) -> tuple[np.ndarray, bool]:
    """PSNRs as drawn: inf (a perfect view) at PSNR_CEILING; and whether any was."""
    values = np.asarray(values, np.float64)
    capped = np.isposinf(values)
    return np.where(capped, PSNR_CEILING, values), bool(capped.any())
