"""Saving a matplotlib figure, the one way every plot of the project is saved."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Tight layout, 120 dpi PNG, figure closed (no leak in sweeps)."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
