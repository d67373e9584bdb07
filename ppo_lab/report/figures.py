"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

Each function draws one PNG from numbers already computed (see `stats`); colors are passed in so a
variant keeps its color across every figure of a report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from ppo_lab.report.stats import Interval

DPI = 110
STEPS_LABEL = "environment steps"


def variant_colors(variants: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """One color per variant, in order (tab10, or tab20 beyond ten variants)."""
    cmap = colormaps["tab10" if len(variants) <= 10 else "tab20"]
    return {v: cmap(i % cmap.N) for i, v in enumerate(variants)}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def _has_ci(interval: Interval) -> bool:
    return bool(np.isfinite(interval.low).any())


def plot_curves(
    path: Path,
    curves: Mapping[str, tuple[np.ndarray, Interval]],
    colors: Mapping[str, tuple[float, ...]],
    *,
    title: str,
    ylabel: str,
    xlabel: str = STEPS_LABEL,
) -> Path:
    """Learning curves: one line per variant over `grid` with its shaded confidence band."""
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    for variant, (grid, band) in curves.items():
        color = colors[variant]
        ax.plot(grid, band.point, color=color, lw=1.8, label=variant)
        if _has_ci(band):
            ax.fill_between(grid, band.low, band.high, color=color, alpha=0.2, lw=0)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(alpha=0.3)
    ax.legend(title="variant", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def plot_intervals(
    path: Path,
    estimates: Mapping[str, Mapping[str, Interval]],
    colors: Mapping[str, tuple[float, ...]],
    *,
    title: str,
    xlabel: str,
) -> Path:
    """One panel per aggregate (`estimates[aggregate][variant]`): point and 95% CI per variant."""
    names = list(estimates)
    variants = list(next(iter(estimates.values()))) if names else []
    fig = _figure(3.0 * max(1, len(names)), 0.9 + 0.45 * len(variants))
    axes = fig.subplots(1, max(1, len(names)), sharey=True, squeeze=False)[0]
    y = np.arange(len(variants))[::-1]
    for ax, name in zip(axes, names, strict=False):
        for yi, variant in zip(y, variants, strict=True):
            est = estimates[name][variant]
            color = colors[variant]
            if np.isfinite(est.low):
                ax.barh(yi, est.high - est.low, left=est.low, height=0.6, color=color, alpha=0.6)
            ax.plot([est.point], [yi], marker="|", ms=18, mew=2.5, color="black")
        ax.set(title=name, xlabel=xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, variants)
    fig.suptitle(title)
    return _save(fig, path)


def plot_improvement(path: Path, pairs: Sequence[tuple[str, str, Interval]], *, title: str) -> Path:
    """P(X > Y) with its 95% CI for each pair of variants; 0.5 (no difference) marked."""
    fig = _figure(7.0, 0.9 + 0.45 * len(pairs))
    ax = fig.add_subplot()
    y = np.arange(len(pairs))[::-1]
    for yi, (_, _, est) in zip(y, pairs, strict=True):
        if np.isfinite(est.low):
            ax.barh(yi, est.high - est.low, left=est.low, height=0.6, color="tab:blue", alpha=0.5)
        ax.plot([est.point], [yi], marker="|", ms=18, mew=2.5, color="black")
    ax.axvline(0.5, color="gray", ls="--", lw=1)
    ax.set_yticks(y, [f"P({x} > {other})" for x, other, _ in pairs])
    ax.set(title=title, xlabel="probability of improvement", xlim=(0, 1))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_profiles(
    path: Path,
    taus: np.ndarray,
    profiles: Mapping[str, Interval],
    colors: Mapping[str, tuple[float, ...]],
    *,
    title: str,
    xlabel: str,
) -> Path:
    """Performance profiles: fraction of runs above each normalized score tau, with bands."""
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    for variant, band in profiles.items():
        color = colors[variant]
        ax.plot(taus, band.point, color=color, lw=1.8, label=variant)
        if _has_ci(band):
            ax.fill_between(taus, band.low, band.high, color=color, alpha=0.2, lw=0)
    ax.set(title=title, xlabel=xlabel, ylabel="fraction of runs with score > τ", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(title="variant", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)
