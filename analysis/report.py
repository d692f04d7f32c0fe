"""The report: every figure the data supports, the verdict table, and an index.html that shows them.

``build_report(tables, out_dir)`` draws each figure of ``FIGURES`` into
``out_dir/figures/<key>.<format>``, writes ``synergy.csv`` (the verdict
table), ``trials.csv`` (the tidy per-trial table) and ``index.html``. A figure
whose trials (or checkpoints, or test images) are missing is listed in the
index with what is missing; the report never fails for lack of data. A figure
that raises anything else is listed with its error and counted in
``ReportResult.errors``.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from analysis import figures as F
from analysis.figures import MissingData, ModelLoader, Plot
from analysis.stats import LEVEL, N_BOOT, synergy_table, verdict_summary
from analysis.tables import Tables

FORMATS = ("png", "pdf", "svg")
"""Image formats ``build_report`` can write."""


@dataclass(frozen=True)
class FigureDef:
    """One figure of the report: file stem, number, title, the paper's caption (paraphrased), how to draw it."""

    key: str
    number: str
    title: str
    caption: str
    draw: Callable[[Tables, "ModelLoader | None"], Plot]
    needs_models: bool = False


def _with_models(fn: Callable[..., Plot]) -> Callable[[Tables, "ModelLoader | None"], Plot]:
    def draw(t: Tables, loader: "ModelLoader | None") -> Plot:
        if loader is None:
            raise MissingData("needs the trials' best checkpoints, and no checkpoint loader was given")
        return fn(t.trials, loader)

    return draw


FIGURES: tuple[FigureDef, ...] = (
    FigureDef("fig03_performance", "3", "Performance w.r.t. λ",
              "Box plots of the classification (test accuracy, blue, left axis) and reconstruction (test MSE, "
              "orange, right axis) performance of trained CREs for each λ; one panel per CRE variant × dataset, "
              "each a select configuration (the one with the most λ values, then the most trials, then n closest "
              "to 16). The paper finds the best accuracy at λ = 0, the best MSE at λ = 1, and a monotonic "
              "trade-off in between.",
              lambda t, _: F.fig3_performance_boxplots(t.trials)),
    FigureDef("fig04_latent_spaces", "4", "Latent space across λ",
              "3-D coordinates z of test images in the latent space of an exemplary FC-based CRE with a "
              "3-dimensional latent space for each λ ∈ {0, 0.2, 1} (the seed with the median test loss); colour = "
              "class, fifty images per class; one row per dataset (the paper: MNIST top, FashionMNIST bottom). "
              "Classification-driven latents form a star of lines, reconstruction-driven ones point clouds.",
              _with_models(F.fig4_latent_spaces), needs_models=True),
    FigureDef("fig05_reconstructions", "5", "Reconstructions across λ",
              "Input images (left column) beside their reconstructions by the models of Fig. 4 at each λ; one row "
              "per dataset. At λ = 0 the decoder draws class prototypes, at λ = 1 it keeps the details.",
              _with_models(F.fig5_reconstructions), needs_models=True),
    FigureDef("fig06_complexity", "6", "Trade-off by network complexity",
              "Mean classification (solid) and reconstruction (dashed) performance with 95% confidence intervals "
              "of FC-based CREs of increasing complexity: green the small, orange the medium, blue the large "
              "variant, all with a 16-dimensional latent space; one panel per dataset, λ categorical.",
              lambda t, _: F.fig6_complexity(t.trials)),
    FigureDef("fig07_latent_size", "7", "Trade-off by latent dimensionality",
              "Mean classification (top row) and reconstruction (bottom row) performance of FC-based CREs vs "
              "dim(z) for several λ, with 95% confidence intervals; columns = datasets; representations from PCA "
              "and random projections (RP) with decoders and classifiers of the same size as references.",
              lambda t, _: F.fig7_latent_size(t.trials)),
    FigureDef("fig08_embedding_width", "8", "Trade-off by embedding dimension",
              "Mean classification (top row) and reconstruction (bottom row) performance of ViT-based CREs vs "
              "embedding width, for the masking variants v1 and v2 and several λ, with 95% confidence intervals; "
              "PCA/RP references where present; v1 is left out of the reconstruction row (it reconstructs only "
              "the masked patches).",
              lambda t, _: F.fig8_embedding_width(t.trials)),
    FigureDef("fig09_fc_mnist", "9", "FC-based CREs on MNIST",
              "Box plots as in Fig. 3 for every FC-based CRE configuration (size × n) on MNIST.",
              lambda t, _: F.fig9_fc_mnist(t.trials)),
    FigureDef("fig10_fc_fashion_mnist", "10", "FC-based CREs on FashionMNIST",
              "Box plots as in Fig. 3 for every FC-based CRE configuration on FashionMNIST.",
              lambda t, _: F.fig10_fc_fashion_mnist(t.trials)),
    FigureDef("fig11_vit_mnist", "11", "ViT-based CREs on MNIST",
              "Box plots as in Fig. 3 for every ViT-based CRE configuration (embedding width) on MNIST.",
              lambda t, _: F.fig11_vit_mnist(t.trials)),
    FigureDef("fig12_vit_fashion_mnist", "12", "ViT-based CREs on FashionMNIST",
              "Box plots as in Fig. 3 for every ViT-based CRE configuration on FashionMNIST.",
              lambda t, _: F.fig12_vit_fashion_mnist(t.trials)),
    FigureDef("fig13_vit_masking", "13", "ViT-based CREs with masking",
              "Box plots of the masked ViT-based CREs (v1: loss on the masked patches, v2: on the whole image) on "
              "MNIST and FashionMNIST; the study trains them at λ = 1 only, so the boxes run over the embedding "
              "width.",
              lambda t, _: F.fig13_vit_masking(t.trials)),
    FigureDef("fig14_cnn_cifar", "14", "CNN-based CREs, and ViT-based CREs on CIFAR-10",
              "Box plots as in Fig. 3 for the CNN-based CREs on MNIST, FashionMNIST and CIFAR-10 and the "
              "ViT-based CREs on CIFAR-10.",
              lambda t, _: F.fig14_cnn_and_cifar(t.trials)),
    FigureDef("fig15_reconstructions_n6", "15", "Reconstructions of small FC CREs with n = 6",
              "Reconstructions on MNIST by small FC-based CREs with 6 latent dimensions: λ = 0 beside λ = 1 "
              "(inputs on the left). With so little capacity λ = 0 gives a distinct average image per class, "
              "λ = 1 an average over all classes.",
              _with_models(F.fig15_reconstructions_fc_small_n6), needs_models=True),
    FigureDef("training_curves", "curves", "Training curves",
              "Per-epoch test accuracy and test MSE of one configuration (the first panel of Fig. 3), the "
              "lowest seed of each λ; not a figure of the paper, a check that the trials converged.",
              lambda t, _: F.training_curves(t.epochs, trials=t.trials)),
)


@dataclass
class FigureOutcome:
    """What became of one figure: its files, or why it is missing."""

    key: str
    number: str
    title: str
    caption: str
    files: list[str] = field(default_factory=list)  # relative to the report folder
    source: str = ""
    missing: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def drawn(self) -> bool:
        return bool(self.files)


@dataclass
class ReportResult:
    out_dir: Path
    figures: list[FigureOutcome]
    synergy: pd.DataFrame
    index: Path
    seconds: float

    @property
    def errors(self) -> list[FigureOutcome]:
        return [f for f in self.figures if f.error]


def build_report(tables: Tables, out_dir: str | Path, *, formats: Sequence[str] = ("png",),
                 loader: ModelLoader | None = None, dpi: int = 120,
                 only: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> ReportResult:
    """Draw every figure of ``FIGURES`` (or those whose key/number is in ``only``) and write the report."""
    t0 = time.perf_counter()
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {', '.join(formats) or 'none'}")
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    outcomes = []
    for fd in FIGURES:
        if only is not None and fd.key not in only and fd.number not in only:
            continue
        oc = FigureOutcome(fd.key, fd.number, fd.title, fd.caption)
        start = time.perf_counter()
        try:
            plot = fd.draw(tables, loader)
        except MissingData as exc:
            oc.missing = str(exc)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the others
            oc.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        else:
            try:
                for fmt in formats:
                    rel = f"figures/{fd.key}.{fmt}"
                    plot.figure.savefig(out / rel, dpi=dpi, format=fmt)
                    oc.files.append(rel)
                oc.source = plot.source
            finally:
                plt.close(plot.figure)
        oc.seconds = time.perf_counter() - start
        if log:
            state = "drawn" if oc.drawn else f"missing: {oc.missing}" if oc.missing else f"ERROR: {oc.error}"
            log(f"{fd.key:<26} {state}")
        outcomes.append(oc)
    synergy = synergy_table(tables.trials)
    synergy.to_csv(out / "synergy.csv", index=False, float_format="%.6g")
    trials_out = tables.trials.copy()
    trials_out["sweeps"] = trials_out["sweeps"].map(lambda v: ";".join(v) if isinstance(v, (list, tuple)) else v)
    trials_out.to_csv(out / "trials.csv", index=False, float_format="%.6g")
    index = out / "index.html"
    index.write_text(render_index(tables, outcomes, synergy), encoding="utf-8")
    return ReportResult(out, outcomes, synergy, index, time.perf_counter() - t0)


# --------------------------------------------------------------------------- index.html
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
figure { margin: 1.5em 0 2.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.95em; line-height: 1.4; } .src { color: #555; }
.missing { background: #f6f6f6; border-left: 4px solid #999; padding: 0.6em 1em; margin: 1em 0; }
.error { background: #fff0ec; border-left: 4px solid #D55E00; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { padding: 2px 8px; border-bottom: 1px solid #e4e4e4; }
th { background: #f2f2f2; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.allies { background: #cfe8f7; font-weight: bold; } td.antagonists { background: #fbe3c2; }
td.inconclusive, td.insufficient, td.missing { color: #666; }
.warn { background: #fff7e0; border-left: 4px solid #E69F00; padding: 0.6em 1em; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _fmt(v: object, digits: int = 4) -> str:
    if isinstance(v, float):
        if pd.isna(v):
            return ""
        return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:.4g}"
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return str(v)


def _counts_html(tables: Tables) -> str:
    cells = "".join(f"<th>{_e(k)}</th>" for k in tables.status_counts) + "<th>total</th>"
    vals = "".join(f"<td class='num'>{v}</td>" for v in tables.status_counts.values())
    total = sum(tables.status_counts.values())
    return f"<table><tr>{cells}</tr><tr>{vals}<td class='num'>{total}</td></tr></table>"


def _convergence_html(trials: pd.DataFrame) -> str:
    """A warning when many trials had their best epoch at their last: they were probably still improving."""
    if trials.empty:
        return ""
    at_end = int((trials["best_epoch"] >= trials["epochs"]).sum())
    if at_end < max(1, 0.25 * len(trials)):
        return ""
    return (f"<p class='warn'><b>{at_end} of {len(trials)} completed trials had their lowest test loss at their "
            f"last epoch</b>: they were probably still improving when training stopped. Comparisons between "
            f"unconverged trials (e.g. an MSE at λ = 1 that is not yet the best it can be) can mislead the "
            f"verdicts; train longer (see the training curves).</p>")


def _by_config_html(trials: pd.DataFrame) -> str:
    if trials.empty:
        return "<p>No completed trials.</p>"
    g = trials.groupby("config_label", sort=True).agg(trials=("trial_id", "size"), lambdas=("lam", "nunique"),
                                                     seeds=("seed", "nunique"))
    rows = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{r.trials}</td><td class='num'>{r.lambdas}</td>"
                   f"<td class='num'>{r.seeds}</td></tr>" for k, r in g.iterrows())
    return (f"<details><summary>{len(g)} configurations with completed trials</summary><table><tr><th>configuration"
            f"</th><th>trials</th><th>λ values</th><th>seeds</th></tr>{rows}</table></details>")


SYNERGY_SHOWN = (("config_label", "configuration"), ("lam", "λ"), ("n_seeds", "seeds"),
                 ("n_seeds_lam0", "seeds λ=0"), ("n_seeds_lam1", "seeds λ=1"),
                 ("acc_mean", "acc"), ("acc_mean_lam0", "acc λ=0"), ("acc_diff", "Δacc"),
                 ("acc_ci_low", "Δacc CI low"), ("acc_ci_high", "Δacc CI high"),
                 ("mse_mean", "MSE"), ("mse_mean_lam1", "MSE λ=1"), ("mse_diff", "ΔMSE"),
                 ("mse_ci_low", "ΔMSE CI low"), ("mse_ci_high", "ΔMSE CI high"),
                 ("synergy_side", "synergy on"), ("verdict", "verdict"))


def _synergy_html(syn: pd.DataFrame) -> str:
    if syn.empty:
        return ("<p>No verdicts: the table needs CRE configurations with trials at λ = 0, λ = 1 and at least one "
                "λ in between.</p>")
    head = "".join(f"<th>{_e(label)}</th>" for _, label in SYNERGY_SHOWN)
    body = []
    for _, r in syn.iterrows():
        cells = []
        for col, _ in SYNERGY_SHOWN:
            v = r[col]
            if col == "verdict":
                cls = str(v).split()[0]
                cells.append(f"<td class='{_e(cls)}'>{_e(v)}</td>")
            elif col == "lam":
                cells.append(f"<td class='num'>{v:g}</td>")
            elif isinstance(v, float) or col.startswith("n_"):
                cells.append(f"<td class='num'>{_e(_fmt(v))}</td>")
            else:
                cells.append(f"<td>{_e(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _verdict_sentence(syn: pd.DataFrame) -> str:
    counts = verdict_summary(syn)
    judged = counts["allies"] + counts["antagonists"] + counts["inconclusive"]
    parts = ", ".join(f"{n} {_e(v)}" for v, n in counts.items() if n)
    if not judged:
        return f"<p>No comparison had enough seeds for a verdict ({parts or 'no comparisons'}).</p>"
    return (f"<p>Of {judged} comparisons (configuration × intermediate λ) with at least two seeds per group: "
            f"<b>{counts['allies']} allies</b> (accuracy significantly above λ = 0 or MSE significantly below "
            f"λ = 1), <b>{counts['antagonists']} antagonists</b> (significantly worse on both sides of the "
            f"trade-off), {counts['inconclusive']} inconclusive. All rows: {parts}.</p>")


def render_index(tables: Tables, outcomes: Sequence[FigureOutcome], synergy: pd.DataFrame) -> str:
    """The report's index.html."""
    if tables.sweep:
        sweep = tables.sweep
    elif len(tables.sweeps) == 1:
        sweep = tables.sweeps[0]
    else:
        sweep = "all sweeps" + (f" ({', '.join(tables.sweeps)})" if tables.sweeps else "")
    drawn = [o for o in outcomes if o.drawn]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>CRE report: {_e(sweep)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Classification and reconstruction: antagonists or allies? — {_e(sweep)}</h1>",
        f"<p>Drawn from {_e(tables.description)}, sweep <b>{_e(sweep)}</b>, on {now}. "
        f"{len(drawn)} of {len(outcomes)} figures drawn.</p>",
        "<h2 id='counts'>Trials</h2>", _counts_html(tables),
    ]
    if tables.incomplete:
        parts.append(f"<p>{tables.incomplete} trial(s) not completed are left out of every figure and table; "
                     f"{len(tables.trials)} completed trials are used.</p>")
    else:
        parts.append(f"<p>All {len(tables.trials)} trials are completed and used.</p>")
    parts.append(_convergence_html(tables.trials))
    parts.append(_by_config_html(tables.trials))
    parts += ["<h2 id='verdict'>Antagonists or allies?</h2>", _verdict_sentence(synergy),
              "<p><a href='#verdict-table'>The verdict table</a> (also <a href='synergy.csv'>synergy.csv</a>).</p>",
              "<h2 id='figures'>Figures</h2><ul>"]
    for o in outcomes:
        state = "" if o.drawn else " — <i>missing</i>" if o.missing else " — <i>error</i>"
        parts.append(f"<li><a href='#{_e(o.key)}'>{_e(_fig_name(o))}: {_e(o.title)}</a>{state}</li>")
    parts.append("</ul>")
    for o in outcomes:
        parts.append(f"<section id='{_e(o.key)}'><h3>{_e(_fig_name(o))}: {_e(o.title)}</h3>")
        if o.drawn:
            img = next((f for f in o.files if f.endswith((".png", ".svg"))), None)
            links = " ".join(f"<a href='{_e(f)}'>{_e(f.rsplit('.', 1)[1])}</a>" for f in o.files)
            body = f"<img src='{_e(img)}' alt='{_e(o.title)}'>" if img else ""
            parts.append(f"<figure>{body}<figcaption><b>{_e(_fig_name(o))}.</b> {_e(o.caption)} "
                         f"<span class='src'>Drawn from: {_e(o.source)}</span> [{links}]</figcaption></figure>")
        elif o.missing:
            parts.append(f"<div class='missing'><b>Not drawn:</b> {_e(o.missing)}.<br><span class='src'>"
                         f"{_e(o.caption)}</span></div>")
        else:
            parts.append(f"<div class='error'><b>Error while drawing:</b> {_e(o.error)}</div>")
        parts.append("</section>")
    parts += [
        "<h2 id='verdict-table'>Verdict table</h2>",
        f"<p>Per CRE configuration and intermediate λ: Δacc = mean accuracy at λ minus mean accuracy at λ = 0, "
        f"ΔMSE = mean MSE at λ minus mean MSE at λ = 1, each with a {LEVEL:.0%} percentile-bootstrap confidence "
        f"interval ({N_BOOT:,} resamples of the seeds of each group, fixed RNG seed). <b>allies</b>: Δacc's "
        f"interval above 0 or ΔMSE's below 0; <b>antagonists</b>: Δacc's interval below 0 and ΔMSE's above 0; "
        f"<b>insufficient seeds</b>: a group has fewer than 2 trials. With few seeds a percentile bootstrap is "
        f"optimistic (narrower than a t-interval): read verdicts from 3 seeds as indications. PCA/RP baselines "
        f"are not CREs and are left out.</p>",
        _synergy_html(synergy),
        "<h2>Files</h2><ul><li><a href='synergy.csv'>synergy.csv</a>: the verdict table</li>"
        "<li><a href='trials.csv'>trials.csv</a>: one row per completed trial (spec, best-epoch metrics)</li>"
        "<li><a href='figures/'>figures/</a></li></ul>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _fig_name(o: FigureOutcome) -> str:
    return "Extra" if o.number == "curves" else f"Fig. {o.number}"
