"""Matplotlib figures without pyplot (no global state, safe in worker processes)."""

from __future__ import annotations

from pathlib import Path


def new_figure(w: float, h: float):
    """A :class:`matplotlib.figure.Figure` of ``w`` x ``h`` inches with an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi: int) -> Path:
    """Save ``fig`` to ``path`` (creating its folder) and clear it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    fig.clear()
    return path
