"""One function per figure of the paper, each drawing from the tidy tables only.

Every figure function takes DataFrames (``analysis.tables``) -- and, for the
latent-space and reconstruction figures, a ``ModelLoader`` that yields trained
models and test images -- and returns a ``Plot``: the matplotlib Figure and a
sentence saying which trials it was drawn from. When the data lacks the trials
a figure needs, the function raises ``MissingData`` naming what is missing;
the report lists the figure with that reason instead of failing.

Datasets: a figure the paper draws on MNIST and FashionMNIST draws every
1x28x28 dataset the data holds (MNIST and FashionMNIST first), and says so
when those are stand-ins (the quickstart's ``digits``); a figure for MNIST only
(Fig. 9, 11, 15) takes MNIST, else the other 28x28 datasets except
FashionMNIST.

Colours: accuracy blue, MSE orange (as in the paper), the Okabe-Ito
colour-blind-safe palette throughout, lambda lines on the sequential viridis
map. Lambda is a categorical axis wherever the paper's figure has lambda on x.

The module leaves matplotlib's backend alone (a notebook keeps its own);
``cre-pipeline report`` selects Agg.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullLocator

from analysis.stats import BASELINE_FAMILIES

# --------------------------------------------------------------------------- style
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000",
}
ACC_COLOR = OKABE_ITO["blue"]
MSE_COLOR = OKABE_ITO["orange"]
SIZE_COLORS = {"small": OKABE_ITO["green"], "medium": OKABE_ITO["orange"], "large": OKABE_ITO["blue"]}
"""Fig. 6's caption: green the least complex CRE, orange the medium, blue the most complex."""
CLASS_COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000",
                "#999999", "#8C564B")
"""Okabe-Ito's eight plus grey and brown: ten classes."""
BASELINE_STYLE = {"pca": dict(color="#000000", ls="--", marker="s"), "rp": dict(color="#999999", ls=":", marker="^")}
MASK_STYLE = {"v1": dict(color=OKABE_ITO["vermillion"], ls="-.", marker="D"),
              "v2": dict(color=OKABE_ITO["purple"], ls="-.", marker="P")}

LAM_LABEL = "λ"
ACC_LABEL = "test accuracy"
MSE_LABEL = "test MSE"

DATASET_ORDER = ("mnist", "fashion_mnist", "cifar10", "digits", "synthetic")
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10"}
MODEL_ORDER = ("fc-small", "fc-medium", "fc-large", "cnn-small", "cnn-large", "vit-small", "vit-large")
PAPER_28 = ("mnist", "fashion_mnist")
FIG4_LAMS = (0.0, 0.2, 1.0)
FIG7_LAMS = (0.0, 0.01, 0.1, 0.6, 0.9, 0.99, 1.0)
"""Lambda lines drawn in Fig. 7 and 8 (those present; all present when fewer than two of these are)."""


class MissingData(Exception):
    """The data lacks the trials (or files) a figure needs; the message says what. One line."""


@dataclass
class Plot:
    """A drawn figure and what it was drawn from (appended to its caption in the report)."""

    figure: Figure
    source: str


class ModelLoader(Protocol):
    """What the latent and reconstruction figures need besides tables (see ``analysis.loaders``)."""

    def model(self, trial_id: str) -> Any:
        """The trial's best model, in eval mode (``model.encoder(x)`` -> z, ``model(x)`` -> (recon, logits))."""

    def test_set(self, dataset: str, shape: tuple[int, int, int]) -> tuple[Any, Any]:
        """(x_test, y_test) of ``dataset`` as torch tensors, images in [-1, 1]."""


# --------------------------------------------------------------------------- helpers
def dataset_name(ds: str) -> str:
    return DATASET_NAMES.get(ds, ds)


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    vals = list(dict.fromkeys(values))
    return sorted(vals, key=lambda v: (order.index(v) if v in order else len(order), v))


def _lam_text(lam: float) -> str:
    return f"{lam:g}"


def _cres(trials: pd.DataFrame) -> pd.DataFrame:
    """Trained CREs, no baselines."""
    return trials[~trials["family"].isin(BASELINE_FAMILIES)]


def _unmasked(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["mask_ratio"] == 0]


def _is28(trials: pd.DataFrame) -> pd.Series:
    return trials["input_shape"] == "1x28x28"


def datasets_like(trials: pd.DataFrame, paper: Sequence[str] = PAPER_28) -> tuple[list[str], str]:
    """The 28x28 datasets to draw where the paper draws ``paper`` datasets, and a note when they differ."""
    have = _ordered(trials.loc[_is28(trials), "dataset"].unique(), DATASET_ORDER)
    if list(paper) == ["mnist"]:
        have = ["mnist"] if "mnist" in have else [d for d in have if d != "fashion_mnist"]
    elif list(paper) == ["fashion_mnist"]:
        have = [d for d in have if d == "fashion_mnist"]
    note = ""
    if have and set(have) != set(paper):
        note = (f" Drawn on {', '.join(dataset_name(d) for d in have)} "
                f"(the paper: {' and '.join(dataset_name(p) for p in paper)}).")
    return have, note


def _lam_colors(lams: Sequence[float]) -> dict[float, Any]:
    """Viridis by rank, not by value: 0.9, 0.99 and 1 must not look alike (the last yellow is avoided)."""
    cmap = plt.get_cmap("viridis")
    ordered = sorted(set(lams))
    step = 0.88 / max(1, len(ordered) - 1)
    return {lam: cmap(i * step) for i, lam in enumerate(ordered)}


def _new_figure(nrows: int, ncols: int, w: float, h: float, **kw: Any) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, **kw)
    return fig, axes


def _hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)


def _pick_representative(g: pd.DataFrame) -> str:
    """The config of ``g`` (one model x dataset) with the most lambdas, then most trials, then n closest to 16."""
    stats = g.groupby("config").agg(lams=("lam", "nunique"), n=("trial_id", "size"), dim=("latent_dim", "first"))
    stats["closeness"] = stats["dim"].map(lambda d: 0.0 if pd.isna(d) else abs(np.log2(d / 16.0)))
    stats = stats.sort_values(["lams", "n", "closeness"], ascending=[False, False, True], kind="mergesort")
    return str(stats.index[0])


def _config_order(df: pd.DataFrame) -> list[str]:
    """Configs ordered by model (registry order), dataset, n, masking."""
    firsts = df.groupby("config").first()
    keys = sorted(firsts.index, key=lambda c: (
        MODEL_ORDER.index(firsts.at[c, "model"]) if firsts.at[c, "model"] in MODEL_ORDER else 99,
        firsts.at[c, "model"],
        DATASET_ORDER.index(firsts.at[c, "dataset"]) if firsts.at[c, "dataset"] in DATASET_ORDER else 99,
        firsts.at[c, "dataset"],
        -1 if pd.isna(firsts.at[c, "latent_dim"]) else firsts.at[c, "latent_dim"],
        str(firsts.at[c, "mask_variant"]), firsts.at[c, "config_label"]))
    return [str(k) for k in keys]


def _counts_text(df: pd.DataFrame) -> str:
    seeds = df.groupby(["config", "lam"]).size()
    lo, hi = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    per = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{len(df)} completed trials, {per} seeds per box"


# --------------------------------------------------------------------------- box plots (Fig. 3, 9-14)
def _style_boxes(parts: dict, color: str) -> None:
    for box in parts["boxes"]:
        box.set(facecolor=color, alpha=0.55, edgecolor=color)
    for key in ("whiskers", "caps"):
        for line in parts[key]:
            line.set(color=color)
    for line in parts["medians"]:
        line.set(color="black", linewidth=1.2)
    for line in parts["fliers"]:
        line.set(marker="o", markersize=3, markerfacecolor=color, markeredgecolor=color, alpha=0.7)


def box_panel(ax: Any, g: pd.DataFrame, *, x: str = "lam", xlabel: str = LAM_LABEL,
              fmt: Callable[[Any], str] = _lam_text) -> Any:
    """Accuracy (blue, left axis) and MSE (orange, right axis) box plots of ``g`` per value of ``x``.

    ``x`` is categorical: one slot per distinct value, labelled with ``fmt``. Returns the twin (MSE) axis.
    """
    xs = sorted(g[x].unique())
    pos = np.arange(len(xs), dtype=float)
    acc = [g.loc[g[x] == v, "test_acc"].to_numpy() for v in xs]
    mse = [g.loc[g[x] == v, "test_mse"].to_numpy() for v in xs]
    ax2 = ax.twinx()
    _style_boxes(ax.boxplot(acc, positions=pos - 0.19, widths=0.32, patch_artist=True, manage_ticks=False), ACC_COLOR)
    _style_boxes(ax2.boxplot(mse, positions=pos + 0.19, widths=0.32, patch_artist=True, manage_ticks=False), MSE_COLOR)
    ax.set_xticks(pos)
    ax.set_xticklabels([fmt(v) for v in xs], rotation=45 if len(xs) > 6 else 0)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ACC_LABEL, color=ACC_COLOR)
    ax2.set_ylabel(MSE_LABEL, color=MSE_COLOR)
    ax.tick_params(axis="y", colors=ACC_COLOR)
    ax2.tick_params(axis="y", colors=MSE_COLOR)
    ax.grid(axis="y", alpha=0.25)
    return ax2


def _box_figure(df: pd.DataFrame, configs: Sequence[str], title: str, *, x: str = "lam",
                xlabel: str = LAM_LABEL, fmt: Callable[[Any], str] = _lam_text,
                panel_title: Callable[[pd.DataFrame], str] | None = None,
                groups: Sequence[tuple[str, pd.DataFrame]] | None = None, ncols: int = 4) -> Figure:
    if groups is None:
        groups = [(c, df[df["config"] == c]) for c in configs]
    n = len(groups)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = _new_figure(nrows, ncols, 4.4, 3.3)
    for ax, (_, g) in zip(axes.flat, groups):
        box_panel(ax, g, x=x, xlabel=xlabel, fmt=fmt)
        ax.set_title(panel_title(g) if panel_title else g["config_label"].iloc[0], fontsize=10)
    _hide_unused(axes, n)
    handles = [Patch(facecolor=ACC_COLOR, alpha=0.55, label=f"{ACC_LABEL} (left axis)"),
               Patch(facecolor=MSE_COLOR, alpha=0.55, label=f"{MSE_LABEL} (right axis)")]
    fig.suptitle(title, fontsize=12)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0.4 / height, 1, 1 - 0.45 / height))  # inches kept for legend and title
    fig.legend(handles=handles, loc="lower center", ncols=2, frameon=False, fontsize=9)
    return fig


def _boxes_by_config(sel: pd.DataFrame, title: str, needs: str, note: str = "") -> Plot:
    if sel.empty:
        raise MissingData(needs)
    configs = _config_order(sel)
    fig = _box_figure(sel, configs, title)
    return Plot(fig, f"{_counts_text(sel)}, {len(configs)} configurations: "
                     f"{'; '.join(sel[sel['config'] == c]['config_label'].iloc[0] for c in configs)}.{note}")


def fig3_performance_boxplots(trials: pd.DataFrame) -> Plot:
    """Fig. 3: accuracy and MSE box plots per lambda, one panel per CRE variant x dataset (a select configuration).

    For each model x dataset the configuration with the most lambda values (then the most trials, then n
    closest to 16) is drawn; masked ViTs and the PCA/RP baselines are not.
    """
    cres = _unmasked(_cres(trials))
    if cres.empty:
        raise MissingData("needs completed CRE trials (fc-*, cnn-*, vit-*) at several lambda values — none in this data")
    chosen = [_pick_representative(g) for _, g in cres.groupby(["model", "dataset"])]
    sel = cres[cres["config"].isin(chosen)]
    return _boxes_by_config(sel, "Performance w.r.t. λ", "")


def fig9_fc_mnist(trials: pd.DataFrame) -> Plot:
    """Fig. 9: box plots of every FC-based CRE configuration on MNIST."""
    return _family_boxes(trials, "fc", ["mnist"], "FC-based CREs on MNIST")


def fig10_fc_fashion_mnist(trials: pd.DataFrame) -> Plot:
    """Fig. 10: box plots of every FC-based CRE configuration on FashionMNIST."""
    return _family_boxes(trials, "fc", ["fashion_mnist"], "FC-based CREs on FashionMNIST")


def fig11_vit_mnist(trials: pd.DataFrame) -> Plot:
    """Fig. 11: box plots of every (unmasked) ViT-based CRE configuration on MNIST."""
    return _family_boxes(trials, "vit", ["mnist"], "ViT-based CREs on MNIST")


def fig12_vit_fashion_mnist(trials: pd.DataFrame) -> Plot:
    """Fig. 12: box plots of every (unmasked) ViT-based CRE configuration on FashionMNIST."""
    return _family_boxes(trials, "vit", ["fashion_mnist"], "ViT-based CREs on FashionMNIST")


def _family_boxes(trials: pd.DataFrame, family: str, paper: list[str], title: str) -> Plot:
    sel = _unmasked(trials[trials["family"] == family])
    datasets, note = datasets_like(sel, paper)
    sel = sel[sel["dataset"].isin(datasets) & _is28(sel)]
    where = " or ".join(dataset_name(p) for p in paper)
    stand_in = "" if paper != ["mnist"] else " (or another 28x28 dataset in its place)"
    if note:  # the title names what is drawn
        title = f"{title.rsplit(' on ', 1)[0]} on {', '.join(dataset_name(d) for d in datasets)} (in place of {where})"
    return _boxes_by_config(sel, title, f"needs unmasked {family}-* trials on {where}{stand_in} — none in this data",
                            note)


def fig13_vit_masking(trials: pd.DataFrame) -> Plot:
    """Fig. 13: box plots of the masked ViT-based CREs (v1, v2) on MNIST and FashionMNIST.

    The masked trials of the study are all at lambda = 1, so the boxes run over the embedding width n;
    one panel per dataset x masking variant (x lambda, where there are several).
    """
    sel = trials[(trials["family"] == "vit") & (trials["mask_ratio"] > 0)]
    datasets, note = datasets_like(sel)
    sel = sel[sel["dataset"].isin(datasets) & _is28(sel)]
    if sel.empty:
        raise MissingData("needs vit-* trials with mask_ratio > 0 (v1/v2) on 28x28 datasets — none in this data")
    groups = []
    for (ds, model, variant, ratio, lam), g in sel.groupby(["dataset", "model", "mask_variant", "mask_ratio", "lam"]):
        groups.append(((DATASET_ORDER.index(ds) if ds in DATASET_ORDER else 99, ds, model, variant, ratio, lam), g))
    groups.sort(key=lambda kv: kv[0])

    def title(g: pd.DataFrame) -> str:
        r = g.iloc[0]
        return f"{r['model']} · {dataset_name(r['dataset'])} · {r['mask_variant']} mask {r['mask_ratio']:g} · λ={r['lam']:g}"

    fig = _box_figure(sel, [], "ViT-based CREs with masking", x="latent_dim", xlabel="embedding width n",
                      fmt=lambda v: f"{int(v)}", panel_title=title, groups=[(str(k), g) for k, g in groups])
    return Plot(fig, f"{len(sel)} completed masked trials in {len(groups)} panels (boxes pool the seeds of one "
                     f"embedding width).{note}")


def fig14_cnn_and_cifar(trials: pd.DataFrame) -> Plot:
    """Fig. 14: CNN-based CREs on MNIST, FashionMNIST, CIFAR-10 and ViT-based CREs on CIFAR-10."""
    cres = _unmasked(_cres(trials))
    sel = cres[(cres["family"] == "cnn") | ((cres["family"] == "vit") & (cres["input_shape"] == "3x32x32"))]
    return _boxes_by_config(sel, "CNN-based CREs, and ViT-based CREs on 32x32 colour images",
                            "needs cnn-* trials or vit-large (3x32x32) trials — none in this data")


# --------------------------------------------------------------------------- Fig. 6: complexity
def _line_with_band(ax: Any, xs: np.ndarray, s: pd.DataFrame, m: str, **style: Any) -> None:
    ax.plot(xs, s[f"{m}_mean"], **style)
    low, high = s[f"{m}_low"].to_numpy(dtype=float), s[f"{m}_high"].to_numpy(dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(xs, low, high, color=style.get("color"), alpha=0.15, linewidth=0)


def fig6_complexity(trials: pd.DataFrame, *, latent_dim: int = 16) -> Plot:
    """Fig. 6: mean accuracy (solid) and MSE (dashed) vs lambda with 95% CI, FC small/medium/large at n = 16.

    One panel per dataset; green small, orange medium, blue large; lambda categorical.
    """
    from analysis.stats import summarise

    sel = _unmasked(trials[(trials["family"] == "fc") & (trials["latent_dim"] == latent_dim)])
    datasets, note = datasets_like(sel)
    sel = sel[sel["dataset"].isin(datasets)]
    if sel.empty:
        raise MissingData(f"needs fc-small/medium/large trials with latent_dim={latent_dim} on 28x28 datasets "
                          "— none in this data")
    lams = sorted(sel["lam"].unique())
    pos = {lam: i for i, lam in enumerate(lams)}
    fig, axes = _new_figure(1, len(datasets), 5.6, 4.0)
    sizes_drawn: list[str] = []
    for ax, ds in zip(axes.flat, datasets):
        ax2 = ax.twinx()
        d = sel[sel["dataset"] == ds]
        for model in _ordered(d["model"].unique(), MODEL_ORDER):
            size = model.split("-", 1)[1] if "-" in model else model
            color = SIZE_COLORS.get(size, OKABE_ITO["black"])
            s = summarise(d[d["model"] == model], ["lam"])
            xs = s["lam"].map(pos).to_numpy(dtype=float)
            _line_with_band(ax, xs, s, "test_acc", color=color, ls="-", marker="o", ms=4)
            _line_with_band(ax2, xs, s, "test_mse", color=color, ls="--", marker="s", ms=4)
            if model not in sizes_drawn:
                sizes_drawn.append(model)
        ax.set_xticks(range(len(lams)))
        ax.set_xticklabels([_lam_text(v) for v in lams], rotation=45 if len(lams) > 6 else 0)
        ax.set_xlabel(LAM_LABEL)
        ax.set_ylabel(f"{ACC_LABEL} (solid)")
        ax2.set_ylabel(f"{MSE_LABEL} (dashed)")
        ax.set_title(f"{dataset_name(ds)} · n={latent_dim}", fontsize=10)
        ax.grid(alpha=0.25)
    handles = [Line2D([], [], color=SIZE_COLORS.get(m.split("-", 1)[-1], "k"), lw=2, label=m) for m in sizes_drawn]
    handles += [Line2D([], [], color="0.3", ls="-", label="accuracy (left)"),
                Line2D([], [], color="0.3", ls="--", label="MSE (right)")]
    fig.suptitle("Trade-off by network complexity (mean, 95% CI)", fontsize=12)
    fig.legend(handles=handles, loc="lower center", ncols=3, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.13, 1, 0.94))
    missing = [m for m in ("fc-small", "fc-medium", "fc-large") if m not in sizes_drawn]
    extra = f" No {', '.join(missing)} trials at n={latent_dim}." if missing else ""
    return Plot(fig, f"{len(sel)} completed trials of {', '.join(sizes_drawn)} at n={latent_dim}.{note}{extra}")


# --------------------------------------------------------------------------- Fig. 7 / 8: vs size
def _pick_lams(present: Iterable[float], preferred: Sequence[float] = FIG7_LAMS, most: int = 7) -> list[float]:
    """All lambdas present when at most ``most``; else those of ``preferred`` (all, if fewer than two of them)."""
    present = sorted(set(present))
    if len(present) <= most:
        return present
    chosen = [lam for lam in present if lam in preferred]
    return chosen if len(chosen) >= 2 else present


def _size_axis(ax: Any, dims: Sequence[float]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(list(dims)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{int(d)}" for d in dims])


def _vs_size_figure(lines: list[tuple[str, pd.DataFrame, dict, bool]], datasets: list[str], xlabel: str,
                    title: str) -> Figure:
    """Rows accuracy / MSE, columns datasets; ``lines``: (label, trials, style, draw in MSE row)."""
    from analysis.stats import summarise

    legend_w = 2.4  # inches on the right for the legend
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.0 * len(datasets) + legend_w, 7.2), squeeze=False,
                             sharex="col")
    handles: dict[str, Line2D] = {}
    for j, ds in enumerate(datasets):
        dims_all: set[float] = set()
        for label, df, style, in_mse in lines:
            d = df[df["dataset"] == ds]
            if d.empty:
                continue
            s = summarise(d, ["latent_dim"])
            dims_all.update(s["latent_dim"])
            for i, m in enumerate(("test_acc", "test_mse")):
                if m == "test_mse" and not in_mse:
                    continue
                _line_with_band(axes[i, j], s["latent_dim"].to_numpy(dtype=float), s, m, ms=4, **style)
            handles.setdefault(label, Line2D([], [], label=label, ms=4, **style))
        for i, (m, lab) in enumerate(((ACC_LABEL, ACC_LABEL), (MSE_LABEL, MSE_LABEL))):
            ax = axes[i, j]
            if dims_all:
                _size_axis(ax, sorted(dims_all))
            ax.set_ylabel(lab)
            ax.grid(alpha=0.25)
        axes[0, j].set_title(dataset_name(ds), fontsize=10)
        axes[1, j].set_xlabel(xlabel)
    fig.suptitle(title, fontsize=12)
    right = 1 - legend_w / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, right, 0.95))
    fig.legend(handles=list(handles.values()), loc="center left", bbox_to_anchor=(right, 0.5), frameon=False,
               fontsize=9)
    return fig


def _size_of(model: str) -> str:
    return model.split("-", 1)[1] if "-" in model else ""


def fig7_latent_size(trials: pd.DataFrame, *, model: str | None = None) -> Plot:
    """Fig. 7: accuracy (top) and MSE (bottom) of FC CREs vs dim(z) for several lambda, with PCA/RP baselines.

    ``model``: the FC variant (default: the one with the most latent sizes, the smallest on ties);
    baselines of the same size (pca-<size>, rp-<size>) are drawn where present. 95% CI bands.
    """
    fc = _unmasked(trials[(trials["family"] == "fc") & _is28(trials)])
    datasets, note = datasets_like(fc)
    fc = fc[fc["dataset"].isin(datasets)]
    if model is None and not fc.empty:
        counts = fc.groupby("model")["latent_dim"].nunique()
        counts = counts[counts >= 2]
        if len(counts):
            best = counts.max()
            model = _ordered([m for m, c in counts.items() if c == best], MODEL_ORDER)[0]
    if model is None or fc[fc["model"] == model]["latent_dim"].nunique() < 2:
        raise MissingData("needs an fc-* model trained at two or more latent sizes (latent_dim) on 28x28 datasets "
                          "— none in this data")
    sel = fc[fc["model"] == model]
    lams = _pick_lams(sel["lam"].unique())
    colors = _lam_colors(lams)
    lines = [(f"λ = {_lam_text(lam)}", sel[sel["lam"] == lam], dict(color=colors[lam], ls="-", marker="o"), True)
             for lam in lams]
    size = _size_of(model)
    base_notes = []
    for fam in ("pca", "rp"):
        b = trials[(trials["model"] == f"{fam}-{size}") & trials["dataset"].isin(datasets)]
        if len(b):
            lines.append((f"{fam.upper()} ({fam}-{size})", b, BASELINE_STYLE[fam], True))
        base_notes.append(f"{len(b)} {fam}-{size}")
    fig = _vs_size_figure(lines, datasets, "dim(z)", f"Trade-off by latent size: {model} (mean, 95% CI)")
    return Plot(fig, f"{len(sel)} completed {model} trials at n = "
                     f"{', '.join(str(int(d)) for d in sorted(sel['latent_dim'].unique()))}, "
                     f"λ = {', '.join(_lam_text(v) for v in lams)}; baselines: {', '.join(base_notes)} trials.{note}")


def fig8_embedding_width(trials: pd.DataFrame) -> Plot:
    """Fig. 8: ViT accuracy (top) and MSE (bottom) vs embedding width for v1/v2 masking and several lambda.

    v1 (loss on the masked patches only) is left out of the MSE row, as in the paper; PCA/RP baselines
    (small) at the same n are drawn where present. 95% CI bands.
    """
    vit = trials[(trials["family"] == "vit") & _is28(trials)]
    datasets, note = datasets_like(vit)
    vit = vit[vit["dataset"].isin(datasets)]
    plain = _unmasked(vit)
    masked = vit[vit["mask_ratio"] > 0]
    if vit["latent_dim"].nunique() < 2:
        raise MissingData("needs vit-small trials at two or more embedding widths (latent_dim) on 28x28 datasets "
                          "— none in this data")
    lams = _pick_lams(plain["lam"].unique())
    colors = _lam_colors(lams)
    lines = [(f"λ = {_lam_text(lam)}", plain[plain["lam"] == lam], dict(color=colors[lam], ls="-", marker="o"), True)
             for lam in lams]
    for (variant, lam), g in masked.groupby(["mask_variant", "lam"]):
        lines.append((f"{variant} masking (λ = {_lam_text(lam)})", g, MASK_STYLE.get(variant, {}), variant != "v1"))
    dims = set(vit["latent_dim"].unique())
    for fam in ("pca", "rp"):
        b = trials[(trials["model"] == f"{fam}-small") & trials["dataset"].isin(datasets)
                   & trials["latent_dim"].isin(dims)]
        if len(b):
            lines.append((f"{fam.upper()} (n = width)", b, BASELINE_STYLE[fam], True))
    fig = _vs_size_figure(lines, datasets, "embedding width n", "Trade-off by embedding width: ViT (mean, 95% CI)")
    mask_txt = (f"{len(masked)} masked ({', '.join(sorted(masked['mask_variant'].dropna().unique()))})"
                if len(masked) else "no masked trials (v1/v2 lines absent)")
    return Plot(fig, f"{len(plain)} completed unmasked ViT trials and {mask_txt}.{note}")


# --------------------------------------------------------------------------- training curves
def select_curve_trials(trials: pd.DataFrame) -> list[str]:
    """Default trials for the training curves: Fig. 3's first configuration, the lowest seed of each lambda."""
    cres = _unmasked(_cres(trials))
    if cres.empty:
        return []
    config = _config_order(cres[cres["config"].isin(
        [_pick_representative(g) for _, g in cres.groupby(["model", "dataset"])])])[0]
    g = cres[cres["config"] == config].sort_values(["lam", "seed"])
    return list(g.drop_duplicates("lam")["trial_id"])


def training_curves(epochs: pd.DataFrame, trial_ids: Sequence[str] | None = None,
                    trials: pd.DataFrame | None = None) -> Plot:
    """Per-epoch test accuracy (left) and test MSE (right) of chosen trials, coloured by lambda.

    ``trial_ids`` default: ``select_curve_trials(trials)``.
    """
    if trial_ids is None:
        trial_ids = select_curve_trials(trials) if trials is not None else []
    ep = epochs[epochs["trial_id"].isin(set(trial_ids))]
    if ep.empty:
        raise MissingData("needs epoch rows of at least one trial — none in this data")
    lams = sorted(ep["lam"].unique())
    colors = _lam_colors(lams)
    fig, axes = _new_figure(1, 2, 5.2, 3.8)
    order = ep.drop_duplicates("trial_id").sort_values(["lam", "seed"])["trial_id"]
    for tid in order:
        g = ep[ep["trial_id"] == tid]
        r = g.iloc[0]
        label = f"λ = {_lam_text(r['lam'])}" + (f" (seed {r['seed']})" if ep["seed"].nunique() > 1 else "")
        for ax, m in zip(axes[0], ("test_acc", "test_mse")):
            ax.plot(g["epoch"], g[m], color=colors[r["lam"]], marker="." if len(g) < 30 else None, label=label)
    for ax, lab in zip(axes[0], (ACC_LABEL, MSE_LABEL)):
        ax.set_xlabel("epoch")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.25)
    axes[0, 1].legend(fontsize=8, frameon=False, loc="upper right")
    labels = list(dict.fromkeys(ep["config_label"]))
    fig.suptitle(f"Training curves: {'; '.join(labels)}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return Plot(fig, f"{ep['trial_id'].nunique()} trials ({'; '.join(labels)}), {len(ep)} epoch rows.")


# --------------------------------------------------------------------------- Fig. 4 / 5 / 15: models
def exemplar(g: pd.DataFrame) -> pd.Series:
    """The trial of ``g`` (seeds of one config and lambda) with the median test loss (lowest seed on ties)."""
    med = g["test_loss"].median()
    return g.assign(_d=(g["test_loss"] - med).abs()).sort_values(["_d", "seed"], kind="mergesort").iloc[0]


def select_latent_trials(trials: pd.DataFrame, *, latent_dim: int = 3, lams: Sequence[float] = FIG4_LAMS,
                         paper: Sequence[str] = PAPER_28, models: Sequence[str] = ("fc-small", "fc-medium", "fc-large"),
                         ) -> tuple[dict[str, dict[float, pd.Series]], str]:
    """{dataset: {lambda: exemplar trial row}} of FC CREs with ``latent_dim``, and the dataset note.

    Per dataset the first of ``models`` that has trials at ``latent_dim`` is used.
    """
    fc = _unmasked(trials[trials["model"].isin(models) & (trials["latent_dim"] == latent_dim)])
    fc = fc[fc["lam"].isin(lams)]
    datasets, note = datasets_like(fc, paper)
    out: dict[str, dict[float, pd.Series]] = {}
    for ds in datasets:
        d = fc[fc["dataset"] == ds]
        model = _ordered(d["model"].unique(), list(models))[0]
        d = d[d["model"] == model]
        out[ds] = {lam: exemplar(g) for lam, g in d.groupby("lam")}
    return out, note


def _lams_text(lams: Sequence[float]) -> str:
    return ", ".join(_lam_text(v) for v in lams)


def _needs_models(latent_dim: int, lams: Sequence[float], paper: Sequence[str], models: Sequence[str]) -> str:
    where = " or ".join(dataset_name(p) for p in paper)
    return (f"needs {'/'.join(models)} with latent_dim={latent_dim} at λ {_lams_text(lams)} on {where} "
            f"(or another 28x28 dataset) — none in this data")


def _per_class(x: Any, y: Any, k: int) -> tuple[Any, Any]:
    """The first ``k`` test images of each class (fewer where a class has fewer), class by class."""
    import torch

    idx = [torch.nonzero(y == c).flatten()[:k] for c in torch.unique(y)]
    idx = torch.cat(idx)
    return x[idx], y[idx]


def fig4_latent_spaces(trials: pd.DataFrame, loader: ModelLoader, *, per_class: int = 50) -> Plot:
    """Fig. 4: 3-D latent spaces of FC CREs with n = 3 at lambda 0, 0.2, 1; 50 test images per class.

    Colour = class; rows = datasets, columns = lambda; one exemplary model (median test loss) per plot.
    """
    import torch

    chosen, note = select_latent_trials(trials)
    chosen = {ds: v for ds, v in chosen.items() if v}
    if not chosen:
        raise MissingData(_needs_models(3, FIG4_LAMS, PAPER_28, ("fc-*",)))
    lams = sorted({lam for v in chosen.values() for lam in v})
    fig = plt.figure(figsize=(4.0 * len(lams), 3.8 * len(chosen)))
    used: list[str] = []
    collapsed: list[str] = []  # models whose z is the same point for every image (dead units)
    n_classes = 0
    for i, (ds, by_lam) in enumerate(chosen.items()):
        first = next(iter(by_lam.values()))
        shape = tuple(int(s) for s in first["input_shape"].split("x"))
        x, y = loader.test_set(ds, shape)
        x, y = _per_class(x, y, per_class)
        n_classes = max(n_classes, int(y.max()) + 1)
        for j, lam in enumerate(lams):
            ax = fig.add_subplot(len(chosen), len(lams), i * len(lams) + j + 1, projection="3d")
            if lam not in by_lam:
                ax.set_title(f"{dataset_name(ds)} · λ = {_lam_text(lam)}: no trial", fontsize=9)
                ax.set_axis_off()
                continue
            row = by_lam[lam]
            model = loader.model(row["trial_id"])
            with torch.no_grad():
                z = model.encoder(x).reshape(len(x), -1).cpu().numpy()
            if float(np.ptp(z, axis=0).max()) < 1e-6:
                collapsed.append(f"{dataset_name(ds)} λ={_lam_text(lam)}")
            colors = [CLASS_COLORS[int(c) % len(CLASS_COLORS)] for c in y.tolist()]
            ax.scatter(z[:, 0], z[:, 1], z[:, 2], c=colors, s=5, depthshade=False)
            ax.set_xlabel("z1", labelpad=-8)
            ax.set_ylabel("z2", labelpad=-8)
            ax.set_zlabel("z3", labelpad=-8)
            ax.tick_params(labelsize=6, pad=-2)
            ax.set_title(f"{dataset_name(ds)} · λ = {_lam_text(lam)}", fontsize=10)
            used.append(f"{row['config_label']} λ={_lam_text(lam)} seed {row['seed']}")
    handles = [Line2D([], [], ls="", marker="o", color=CLASS_COLORS[c % len(CLASS_COLORS)], label=str(c))
               for c in range(n_classes)]
    fig.legend(handles=handles, title="class", loc="center right", frameon=False, fontsize=8)
    fig.suptitle("Latent spaces (z) of FC CREs with n = 3", fontsize=12, y=0.99)
    fig.subplots_adjust(left=0.02, right=0.9, top=0.86 if len(chosen) == 1 else 0.92, bottom=0.03, wspace=0.1,
                        hspace=0.15)
    dead = (f" The latent of {', '.join(collapsed)} is one point for every image (its units are dead): the "
            f"classifier and decoder see a constant." if collapsed else "")
    return Plot(fig, f"Best checkpoints of {'; '.join(used)}; up to {per_class} test images per class.{note}{dead}")


def _mosaic(images: Any, ncols: int) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> one (rows*H, ncols*W[, C]) array in [0, 1] with 1-pixel gaps."""
    a = ((images.detach().cpu().numpy() + 1.0) / 2.0).clip(0, 1)
    n, c, h, w = a.shape
    rows = -(-n // ncols)
    out = np.ones((rows * (h + 1) - 1, ncols * (w + 1) - 1, c))
    for k in range(n):
        r, q = divmod(k, ncols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = a[k].transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


def _reconstruction_figure(chosen: dict[str, dict[float, pd.Series]], loader: ModelLoader, title: str,
                           per_class: int, ncols: int) -> tuple[Figure, list[str]]:
    import torch

    lams = sorted({lam for v in chosen.values() for lam in v})
    rows = -(-10 * per_class // ncols)  # ten classes
    fig, axes = _new_figure(len(chosen), len(lams) + 1, 0.85 * ncols + 0.6, 0.85 * rows + 0.6)
    used = []
    for i, (ds, by_lam) in enumerate(chosen.items()):
        first = next(iter(by_lam.values()))
        shape = tuple(int(s) for s in first["input_shape"].split("x"))
        x, y = loader.test_set(ds, shape)
        x, _ = _per_class(x, y, per_class)
        cmap = "gray" if x.shape[1] == 1 else None
        axes[i, 0].imshow(_mosaic(x, ncols), cmap=cmap, vmin=0, vmax=1)
        axes[i, 0].set_title(f"{dataset_name(ds)}: input", fontsize=10)
        for j, lam in enumerate(lams, start=1):
            ax = axes[i, j]
            if lam not in by_lam:
                ax.set_title(f"λ = {_lam_text(lam)}: no trial", fontsize=9)
                continue
            row = by_lam[lam]
            model = loader.model(row["trial_id"])
            with torch.no_grad():
                recon = model(x)[0]
            ax.imshow(_mosaic(recon, ncols), cmap=cmap, vmin=0, vmax=1)
            ax.set_title(f"λ = {_lam_text(lam)}", fontsize=10)
            used.append(f"{row['config_label']} λ={_lam_text(lam)} seed {row['seed']}")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig, used


def fig5_reconstructions(trials: pd.DataFrame, loader: ModelLoader, *, per_class: int = 1) -> Plot:
    """Fig. 5: test inputs (left) beside their reconstructions at lambda 0, 0.2, 1 (the models of Fig. 4)."""
    chosen, note = select_latent_trials(trials)
    chosen = {ds: v for ds, v in chosen.items() if v}
    if not chosen:
        raise MissingData(_needs_models(3, FIG4_LAMS, PAPER_28, ("fc-*",)))
    fig, used = _reconstruction_figure(chosen, loader, "Reconstructions across λ (FC CREs, n = 3)", per_class, 2)
    return Plot(fig, f"Best checkpoints of {'; '.join(used)}; the first test image of each class.{note}")


def fig15_reconstructions_fc_small_n6(trials: pd.DataFrame, loader: ModelLoader, *, per_class: int = 1) -> Plot:
    """Fig. 15: reconstructions on MNIST of small FC CREs with n = 6: left lambda = 0, right lambda = 1."""
    chosen, note = select_latent_trials(trials, latent_dim=6, lams=(0.0, 1.0), paper=["mnist"], models=("fc-small",))
    chosen = {ds: v for ds, v in chosen.items() if v}
    if not chosen:
        raise MissingData(_needs_models(6, (0.0, 1.0), ["mnist"], ("fc-small",)))
    fig, used = _reconstruction_figure(chosen, loader, "Reconstructions of fc-small, n = 6", per_class, 2)
    return Plot(fig, f"Best checkpoints of {'; '.join(used)}; the first test image of each class.{note}")
