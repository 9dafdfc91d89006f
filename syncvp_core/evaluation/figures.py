"""Matplotlib plumbing shared by every plot of a report: the headless backend and one way to save."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (reports are written on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path, ax: Any = None, rect: tuple[float, float, float, float] | None = None) -> bool:
    """Write ``fig`` as a PNG (folders created) and free it; ``ax`` gets the report's grid and legend.
    Returns True (what the plot functions return when they drew something)."""
    if ax is not None:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout(rect=rect) if rect else fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return True
