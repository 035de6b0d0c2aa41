"""PNG plots for verification: ROC (log FAR axis), DET (normal-deviate axes) and score histograms.

matplotlib is imported inside each function, so `import siamese.evaluation` stays cheap. The figures
are built with `matplotlib.figure.Figure` and rendered by the Agg canvas directly: no pyplot, no GUI
backend, no global figure registry to leak into (and the caller's backend is left alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from siamese.evaluation.metrics import _validate, det_curve, eer, roc_auc, roc_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999)


def _new_figure() -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(6.0, 4.8), dpi=110, layout="constrained")


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _eer_label(rate: float, threshold: float, negated_distance: bool) -> str:
    if negated_distance:
        return f"EER = {rate:.2%} at distance {-threshold:.4g}"
    return f"EER = {rate:.2%} at {threshold:.4g}"


def _curve(scores: npt.ArrayLike, is_same: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, Figure]:
    """Validated scores and labels, and a new figure for their curve."""
    s, y = _validate(scores, is_same)
    return s, y, _new_figure()


def _finish(
    fig: Figure,
    title: str,
    legend: Literal["best", "lower right", "upper right"],
    path: str | Path,
    which: Literal["major", "both"] = "major",
) -> Path:
    """Title, grid and legend of the figure's one axes, then save it."""
    ax = fig.axes[0]
    ax.set_title(title)
    ax.grid(True, which=which, alpha=0.3)
    ax.legend(loc=legend)
    return _save(fig, path)


def plot_roc(
    scores: npt.ArrayLike,
    is_same: npt.ArrayLike,
    path: str | Path,
    title: str | None = None,
    negated_distance: bool = False,
) -> Path:
    """ROC curve with a logarithmic FAR axis from 1 / n_impostor to 1, the EER point marked.

    Args:
        scores: Pair scores, higher = more likely the same.
        is_same: True for genuine pairs.
        path: Where to write the PNG (parent folders are created).
        title: Figure title; defaults to "ROC".
        negated_distance: `scores` are `-distance`; the legend then gives the EER threshold as a distance.

    Returns:
        The PNG's path.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = plot_roc([0.9, 0.8, 0.3, 0.1], [True, False, True, False], Path(tmp) / "roc.png")
    ...     out.stat().st_size > 0
    True
    """
    s, y, fig = _curve(scores, is_same)
    far, tar, _ = roc_curve(s, y, drop_intermediate=True)
    rate, threshold = eer(s, y)
    x_min = 1.0 / np.count_nonzero(~y)
    ax = fig.add_subplot()
    visible = far >= x_min  # FAR = 0 has no place on a log axis
    ax.plot(far[visible], tar[visible], lw=2, label=f"ROC (AUC = {roc_auc(s, y):.4f})")
    chance = np.logspace(np.log10(x_min), 0, 50)
    ax.plot(chance, chance, ls=":", color="grey", label="chance")
    ax.plot(
        [max(rate, x_min)], [1.0 - rate], "o", color="C3", label=_eer_label(rate, threshold, negated_distance)
    )
    ax.set_xscale("log")
    ax.set_xlim(x_min, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("False accept rate (FAR)")
    ax.set_ylabel("True accept rate (TAR)")
    return _finish(fig, title or "ROC", "lower right", path, which="both")


def plot_det(
    scores: npt.ArrayLike,
    is_same: npt.ArrayLike,
    path: str | Path,
    title: str | None = None,
    negated_distance: bool = False,
) -> Path:
    """DET curve (FAR vs FRR) on normal-deviate axes, the EER point and the FAR = FRR line marked.

    Rates of 0 or 1 cannot be drawn on normal-deviate axes; they are clipped to half a pair
    (0.5 / n) inside the range. Arguments and result as for `plot_roc`; `title` defaults to "DET".

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     plot_det([0.9, 0.8, 0.3, 0.1], [True, False, True, False], Path(tmp) / "det.png").suffix
    '.png'
    """
    from scipy.stats import norm

    s, y, fig = _curve(scores, is_same)
    far, frr, _ = det_curve(s, y)
    rate, threshold = eer(s, y)
    eps = 0.5 / min(np.count_nonzero(y), np.count_nonzero(~y))
    deviate = norm.ppf  # probability -> standard normal quantile
    ax = fig.add_subplot()
    lim = deviate([eps, 1.0 - eps])
    ax.plot(lim, lim, ls=":", color="grey", label="FAR = FRR")
    ax.plot(deviate(np.clip(far, eps, 1 - eps)), deviate(np.clip(frr, eps, 1 - eps)), lw=2, label="DET")
    eer_xy = deviate(np.clip(rate, eps, 1 - eps))
    ax.plot([eer_xy], [eer_xy], "o", color="C3", label=_eer_label(rate, threshold, negated_distance))
    ticks = [t for t in _DET_TICKS if eps <= t <= 1 - eps]
    for set_ticks, set_labels in ((ax.set_xticks, ax.set_xticklabels), (ax.set_yticks, ax.set_yticklabels)):
        set_ticks(deviate(ticks))
        set_labels([f"{100 * t:g}" for t in ticks])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("False accept rate, FAR (%)")
    ax.set_ylabel("False reject rate, FRR (%)")
    return _finish(fig, title or "DET", "upper right", path)


def plot_score_histograms(
    distances: npt.ArrayLike,
    is_same: npt.ArrayLike,
    threshold: float | None,
    path: str | Path,
    xlabel: str = "distance",
    title: str | None = None,
) -> Path:
    """Overlaid genuine vs impostor histograms (shared bins, densities) with the threshold line.

    Works for any per-pair value (distance or similarity); either class may be absent.

    Args:
        distances: (N,) per-pair values.
        is_same: True for genuine pairs.
        threshold: Drawn as a vertical line; None draws none.
        path: Where to write the PNG.
        xlabel: Label of the value axis.
        title: Figure title; defaults to "Genuine vs impostor <xlabel>".

    Returns:
        The PNG's path.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     values, same = [0.2, 0.9, 0.3, 1.1], [True, False, True, False]
    ...     out = plot_score_histograms(values, same, 0.6, Path(tmp) / "h.png")
    >>> out.name
    'h.png'
    """
    d, y = _validate(distances, is_same, need_both=False)
    edges = np.histogram_bin_edges(d, bins="auto")
    bins = np.linspace(d.min(), d.max(), min(len(edges) - 1, 80) + 1).tolist() if d.max() > d.min() else 10
    fig = _new_figure()
    ax = fig.add_subplot()
    for mask, name, color in ((y, "genuine", "C0"), (~y, "impostor", "C1")):
        if mask.any():
            n = int(np.count_nonzero(mask))
            ax.hist(d[mask], bins=bins, density=True, alpha=0.5, color=color, label=f"{name} (n={n})")
    if threshold is not None:
        ax.axvline(float(threshold), color="k", ls="--", label=f"threshold = {float(threshold):.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    return _finish(fig, title or f"Genuine vs impostor {xlabel}", "best", path)


def plot_dir_fpir(
    curves: dict[str, tuple[npt.ArrayLike, npt.ArrayLike]],
    path: str | Path,
    title: str = "Open-set identification",
    gallery_size: int | None = None,
) -> Path:
    """DIR (rank 1) against FPIR on a log FPIR axis, one line per labelled curve
    (`siamese.evaluation.identification.dir_fpir_curve`), with the NIST operating points marked.

    Args:
        curves: label -> (FPIR values, DIR values).
        path: PNG file to write.
        title: the figure's title.
        gallery_size: N, shown in the title.
    """
    fig = _new_figure()
    ax = fig.add_subplot()
    for label, (fpir, dir_) in curves.items():
        f, d = np.asarray(fpir, dtype=np.float64), np.asarray(dir_, dtype=np.float64)
        keep = f > 0
        ax.step(f[keep], d[keep], where="post", label=label)
    for rate in (0.003, 0.01, 0.1):
        ax.axvline(rate, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("FPIR (share of non-enrolled people given a candidate)")
    ax.set_ylabel("DIR = 1 - FNIR (rank 1)")
    ax.set_ylim(0.0, 1.02)
    return _finish(
        fig, title + ("" if gallery_size is None else f" (N = {gallery_size})"), "lower right", path
    )
