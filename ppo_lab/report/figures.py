"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

Each function draws one PNG from numbers already computed (see `stats`). Styles are passed in so a
variant keeps its colour and line style across every figure of a report; a variant's label says
how many runs it has (`loss=clip (n=5)`). Learning curves whose bands would hide each other (or
more than `MAX_OVERLAID` variants) are drawn as small multiples, one panel per variant.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from ppo_lab.report.stats import Interval

DPI = 110
STEPS_LABEL = "environment steps"
MAX_OVERLAID = 4  # more variants than this: one panel per variant
OVERLAP = 0.5  # two bands overlapping on more than this fraction of steps hide each other
MAX_PANELS = 24  # small multiples: the best-ranked variants beyond this are left out
LABEL_WIDTH = 34  # characters per line of a variant label
LINE_STYLES: tuple[Any, ...] = ("-", "--", ":", "-.")
NOTE_STYLE = {"fontsize": "small", "color": "#8a4b00", "style": "italic"}


class Style(NamedTuple):
    """How one variant is drawn in every figure: a colour and a line style."""

    color: tuple[float, ...]
    linestyle: Any


def variant_styles(variants: Sequence[str]) -> dict[str, Style]:
    """One colour and one line style per variant, in order; no two variants share both (up to
    40 variants), so the curves stay apart in grey print too."""
    cmap = colormaps["tab10" if len(variants) <= 10 else "tab20"]
    n_colors, n_styles = (10 if len(variants) <= 10 else 20), len(LINE_STYLES)
    return {
        v: Style(cmap(i % n_colors), LINE_STYLES[(i + i // n_colors) % n_styles])
        for i, v in enumerate(variants)
    }


def variant_colors(variants: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """One colour per variant, in order (tab10, or tab20 beyond ten variants)."""
    return {v: s.color for v, s in variant_styles(variants).items()}


def wrap(label: str, width: int = LABEL_WIDTH) -> str:
    """A long variant label over several lines (broken after commas where it can)."""
    return textwrap.fill(label, width=width, break_long_words=False, break_on_hyphens=False)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def _has_ci(interval: Interval) -> bool:
    return bool(np.isfinite(interval.low).any())


def _line_with_band(
    ax: Any, x: np.ndarray, band: Interval, style: Any, label: str, alpha: float
) -> None:
    """One variant's estimate as a line in its colour and style, its CI as a shaded band."""
    ax.plot(x, band.point, color=style.color, ls=style.linestyle, lw=1.9, label=label)
    if _has_ci(band):
        ax.fill_between(x, band.low, band.high, color=style.color, alpha=alpha, lw=0)


def _legend_outside(ax: Any, legend_title: str | None) -> None:
    """The legend right of the axes, so it hides no curve."""
    ax.legend(
        title=textwrap.fill(legend_title, 44) if legend_title else None,
        title_fontsize="small",
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )


def _note(fig: Figure, note: str | None) -> None:
    if note:
        fig.supxlabel(textwrap.fill(note, 110), **NOTE_STYLE)


def bands_overlap(curves: Mapping[str, tuple[np.ndarray, Interval]]) -> bool:
    """Whether the bands of some two variants overlap on more than `OVERLAP` of their shared
    steps (a band drawn over another hides it)."""
    items = [(g, b) for g, b in curves.values() if _has_ci(b)]
    for i, (_, a) in enumerate(items):
        for _, b in items[i + 1 :]:
            both = np.isfinite(a.low) & np.isfinite(b.low)
            if both.sum() and ((a.low <= b.high) & (b.low <= a.high))[both].mean() > OVERLAP:
                return True
    return False


def plot_curves(
    path: Path,
    curves: Mapping[str, tuple[np.ndarray, Interval]],
    styles: Mapping[str, Style],
    labels: Mapping[str, str],
    *,
    title: str,
    ylabel: str,
    xlabel: str = STEPS_LABEL,
    legend_title: str = "",
    ceiling: float | None = None,
    note: str | None = None,
    panels: bool | None = None,
) -> Path:
    """Learning curves with shaded bands: one axes with every variant, or (`panels`, by default
    when more than `MAX_OVERLAID` variants or when bands overlap) one panel per variant with the
    other variants as thin grey lines. `legend_title` says what the curves and bands are (the
    smoothing window); `ceiling`, the env's highest return, is drawn as a dotted line."""
    if panels is None:
        panels = len(curves) > MAX_OVERLAID or bands_overlap(curves)
    ceiling = _near_ceiling(curves, ceiling)
    if panels and len(curves) > 1:
        return _curve_panels(
            path, curves, styles, labels, title, ylabel, xlabel, legend_title, ceiling, note
        )
    fig = _figure(8.0, 4.4)
    ax = fig.add_subplot()
    for variant, (grid, band) in curves.items():
        _line_with_band(ax, grid, band, styles[variant], wrap(labels.get(variant, variant)), 0.18)
    _ceiling_line(ax, ceiling)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(alpha=0.3)
    _legend_outside(ax, legend_title)
    _note(fig, note)
    return _save(fig, path)


def _near_ceiling(
    curves: Mapping[str, tuple[np.ndarray, Interval]], ceiling: float | None
) -> float | None:
    """`ceiling` when the curves come within a quarter of their range of it (else drawing it
    would squash them), otherwise None."""
    if ceiling is None or not curves:
        return None
    values = np.concatenate([np.ravel(part) for _, band in curves.values() for part in band])
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    low, high = float(values.min()), float(values.max())
    return ceiling if ceiling <= high + 0.25 * max(high - low, 1e-12) else None


def _ceiling_line(ax: Any, ceiling: float | None) -> None:
    if ceiling is not None:
        ax.axhline(ceiling, color="0.35", ls=(0, (1, 2)), lw=1.0, zorder=0)
        ax.annotate(
            f"ceiling {ceiling:g}",
            xy=(0.0, ceiling),
            xycoords=("axes fraction", "data"),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize="x-small",
            color="0.35",
            va="bottom",
        )


def _curve_panels(
    path: Path,
    curves: Mapping[str, tuple[np.ndarray, Interval]],
    styles: Mapping[str, Style],
    labels: Mapping[str, str],
    title: str,
    ylabel: str,
    xlabel: str,
    legend_title: str,
    ceiling: float | None,
    note: str | None,
) -> Path:
    shown = list(curves)[:MAX_PANELS]
    n = len(shown)
    cols = 2 if n in (2, 4) else min(3, n)
    rows = -(-n // cols)
    fig = _figure(3.7 * cols, 0.9 + 2.7 * rows)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, variant in zip(axes, shown, strict=False):
        for other, (grid, band) in curves.items():
            if other != variant:
                ax.plot(grid, band.point, color="0.6", lw=0.8, alpha=0.7)
        grid, band = curves[variant]
        style = styles[variant]
        ax.plot(grid, band.point, color=style.color, ls=style.linestyle, lw=2.0)
        if _has_ci(band):
            ax.fill_between(grid, band.low, band.high, color=style.color, alpha=0.25, lw=0)
        _ceiling_line(ax, ceiling)
        ax.set_title(wrap(labels.get(variant, variant), 44), fontsize="small")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(textwrap.fill(ylabel, 30), fontsize="small")
    for ax in axes[max(0, n - cols) : n]:
        ax.set_xlabel(xlabel)
        ax.tick_params(labelbottom=True)
    left_out = len(curves) - n
    head = title + (f" (best {n} of {len(curves)} variants)" if left_out else "")
    fig.suptitle(
        head + ("\n" + legend_title + "; grey: the other variants" if legend_title else ""),
        fontsize="medium",
    )
    _note(fig, note)
    return _save(fig, path)


@dataclasses.dataclass
class IntervalPanel:
    """One panel of a final-score figure: an estimator's point and interval per variant, with
    each run's own value beside it."""

    title: str
    xlabel: str
    estimates: Mapping[str, Interval]
    points: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    marks: Mapping[str, str] = dataclasses.field(default_factory=dict)  # variant -> "ceiling"
    start_at_zero: bool = False  # a gap or a probability: the axis starts at 0


def plot_intervals(
    path: Path,
    panels: Sequence[IntervalPanel],
    styles: Mapping[str, Style],
    labels: Mapping[str, str],
    *,
    title: str,
    key: str = "",
    note: str | None = None,
) -> Path:
    """One panel per estimator: per variant, the interval as a bar, the point estimate as a black
    tick and every run as a dot (so a 3-run interval reads as the 3 runs it is); a variant marked
    (`marks`, e.g. "ceiling") gets its mark instead of a zero-width bar. Each axis spans every
    bar, tick and dot."""
    variants = list(panels[0].estimates) if panels else []
    fig = _figure(3.1 * max(1, len(panels)) + 1.6, 1.2 + 0.5 * max(1, len(variants)))
    axes = fig.subplots(1, max(1, len(panels)), sharey=True, squeeze=False)[0]
    y = np.arange(len(variants))[::-1].astype(float)
    rng = np.random.default_rng(0)  # jitter of the run dots, the same in every report
    for ax, panel in zip(axes, panels, strict=False):
        shown: list[float] = [0.0] if panel.start_at_zero else []
        for yi, variant in zip(y, variants, strict=True):
            est = panel.estimates[variant]
            color = styles[variant].color
            mark = panel.marks.get(variant)
            point = float(est.point)
            if np.isfinite(est.low) and not mark:
                ax.barh(
                    yi,
                    float(est.high - est.low),
                    left=float(est.low),
                    height=0.55,
                    color=color,
                    alpha=0.45,
                    lw=0,
                )
                shown += [float(est.low), float(est.high)]
            runs = np.asarray(panel.points.get(variant, []), dtype=float)
            if len(runs):
                jitter = rng.uniform(-0.16, 0.16, len(runs))
                ax.scatter(
                    runs, yi + jitter, s=14, color=color, edgecolor="black", lw=0.4, zorder=3
                )
                shown += runs[np.isfinite(runs)].tolist()
            ax.plot([point], [yi], marker="|", ms=16, mew=2.5, color="black", zorder=4)
            shown.append(point)
            if mark:
                ax.annotate(
                    mark,
                    xy=(point, yi),
                    xytext=(0, 9),
                    textcoords="offset points",
                    ha="center",
                    fontsize="x-small",
                    color="#8a4b00",
                    style="italic",
                )
        lo, hi = min(shown), max(shown)
        pad = 0.08 * (hi - lo) if hi > lo else max(1.0, abs(hi)) * 0.05
        ax.set_xlim(lo - pad, hi + pad)  # the dots at either end drawn whole
        ax.set_title(panel.title, fontsize="medium")
        ax.set_xlabel(panel.xlabel)
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.7, len(variants) - 0.3)
    axes[0].set_yticks(y, [wrap(labels.get(v, v)) for v in variants], fontsize="small")
    fig.suptitle(title + (f"\n{key}" if key else ""))
    _note(fig, note)
    return _save(fig, path)


def plot_improvement(
    path: Path,
    pairs: Sequence[tuple[str, str, Interval]],
    *,
    title: str,
    xlabel: str = "probability of improvement P(X > Y)",
    marks: Sequence[str | None] = (),
    note: str | None = None,
) -> Path:
    """P(X > Y) with its interval for each pair of variants; 0.5 (no difference) marked."""
    fig = _figure(7.5, 1.1 + 0.5 * len(pairs))
    ax = fig.add_subplot()
    y = np.arange(len(pairs))[::-1]
    marks = list(marks) + [None] * (len(pairs) - len(marks))
    for yi, (_, _, est), mark in zip(y, pairs, marks, strict=True):
        if np.isfinite(est.low) and not mark:
            ax.barh(
                yi,
                est.high - est.low,
                left=est.low,
                height=0.55,
                color="tab:blue",
                alpha=0.45,
                lw=0,
            )
        ax.plot([est.point], [yi], marker="|", ms=16, mew=2.5, color="black")
        if mark:
            point = float(est.point)
            ax.annotate(
                mark,
                xy=(point, yi),
                xytext=(0, 9),
                textcoords="offset points",
                ha="right" if point > 0.8 else "left" if point < 0.2 else "center",
                fontsize="x-small",
                color="#8a4b00",
                style="italic",
            )
    ax.axvline(0.5, color="gray", ls="--", lw=1)
    ax.set_yticks(y, [wrap(f"P({x} > {other})", 60) for x, other, _ in pairs], fontsize="small")
    ax.set(title=title, xlabel=xlabel, xlim=(-0.04, 1.04), ylim=(-0.7, len(pairs) - 0.3))
    ax.grid(axis="x", alpha=0.3)
    _note(fig, note)
    return _save(fig, path)


def plot_profiles(
    path: Path,
    taus: np.ndarray,
    profiles: Mapping[str, Interval],
    styles: Mapping[str, Style],
    labels: Mapping[str, str],
    *,
    title: str,
    xlabel: str,
    legend_title: str = "",
) -> Path:
    """Performance profiles: fraction of runs above each normalized score tau, with bands."""
    fig = _figure(8.0, 4.4)
    ax = fig.add_subplot()
    for variant, band in profiles.items():
        _line_with_band(ax, taus, band, styles[variant], wrap(labels.get(variant, variant)), 0.15)
    ax.set(title=title, xlabel=xlabel, ylabel="fraction of runs with score > τ", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    _legend_outside(ax, legend_title)
    return _save(fig, path)
