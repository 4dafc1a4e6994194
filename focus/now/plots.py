"""Cumulative error curves of NoW errors (percentage of scan vertices below an error)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from focus.io_utils import atomic_path


def cumulative_error_curve(errors: np.ndarray, x_max: float = 8.0, num: int = 801) -> tuple[np.ndarray, np.ndarray]:
    """``(x (num,), percent (num,))``: percentage of ``errors`` (mm) that are ``<= x``."""
    e = np.sort(np.asarray(errors, dtype=np.float64).ravel())
    x = np.linspace(0.0, x_max, num)
    if len(e) == 0:
        return x, np.full(num, np.nan)
    return x, 100.0 * np.searchsorted(e, x, side="right") / len(e)


def plot_cumulative_errors(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    out_png: str | Path,
    title: str = "NoW cumulative error",
    x_max: float = 8.0,
) -> None:
    """Plot named curves (from :func:`cumulative_error_curve`) to a PNG, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for name, (x, y) in curves.items():
        if np.isfinite(y).any():
            ax.plot(x, y, label=name, linewidth=2.0 if name == "all" else 1.2)
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, 100)
    ax.set_xticks(np.arange(0, x_max + 1e-9, 1.0))
    ax.set_yticks(np.arange(0, 101, 20))
    ax.grid(alpha=0.3)
    ax.set_xlabel("Error [mm]")
    ax.set_ylabel("Percentage of scan vertices")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
