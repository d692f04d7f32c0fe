"""Every figure function draws a non-blank figure with the expected labels, or says what is missing."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from analysis_helpers import axis_labels, png_colours

from analysis import figures as F
from analysis.figures import ACC_LABEL, LAM_LABEL, MSE_LABEL, MissingData, Plot

BOX = {LAM_LABEL, ACC_LABEL, MSE_LABEL}

# figure function, labels every drawing must show, titles of panels that must be there
TABLE_FIGURES = [
    (F.fig3_performance_boxplots, BOX, {"fc-small · mnist · n=16", "cnn-large · cifar10", "vit-small · mnist · n=16"}),
    (F.fig6_complexity, {LAM_LABEL, f"{ACC_LABEL} (solid)", f"{MSE_LABEL} (dashed)"},
     {"MNIST · n=16", "FashionMNIST · n=16"}),
    (F.fig7_latent_size, {"dim(z)", ACC_LABEL, MSE_LABEL}, {"MNIST", "FashionMNIST"}),
    (F.fig8_embedding_width, {"embedding width n", ACC_LABEL, MSE_LABEL}, {"MNIST"}),
    (F.fig9_fc_mnist, BOX, {"fc-small · mnist · n=3", "fc-small · mnist · n=6", "fc-large · mnist · n=16"}),
    (F.fig10_fc_fashion_mnist, BOX, {"fc-medium · fashion_mnist · n=16"}),
    (F.fig11_vit_mnist, BOX, {"vit-small · mnist · n=8", "vit-small · mnist · n=16"}),
    (F.fig13_vit_masking, {"embedding width n", ACC_LABEL, MSE_LABEL},
     {"vit-small · MNIST · v1 mask 0.66 · λ=1", "vit-small · MNIST · v2 mask 0.66 · λ=1"}),
    (F.fig14_cnn_and_cifar, BOX, {"cnn-small · mnist", "cnn-large · cifar10", "vit-large · cifar10 · n=8"}),
]


@pytest.mark.parametrize("fn,labels,titles", TABLE_FIGURES, ids=lambda v: getattr(v, "__name__", ""))
def test_figure_draws_with_labels(planted_tables, fn, labels, titles) -> None:  # noqa: ANN001
    plot = fn(planted_tables.trials)
    try:
        assert isinstance(plot, Plot) and plot.source
        got = axis_labels(plot.figure)
        assert labels <= got, labels - got
        assert titles <= got, titles - got
        assert png_colours(plot.figure) > 20
        assert plot.figure.legends, "a legend explains the colours"
    finally:
        plt.close(plot.figure)


def test_box_plots_show_every_lambda_as_a_category(planted_tables) -> None:  # noqa: ANN001
    plot = F.fig9_fc_mnist(planted_tables.trials)
    ax = next(a for a in plot.figure.axes if a.get_title() == "fc-small · mnist · n=16")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.2", "0.5", "1"]
    twin = next(a for a in plot.figure.axes if a is not ax and a.get_ylabel() == MSE_LABEL
                and a.get_position().bounds == ax.get_position().bounds)
    assert ax.get_ylabel() == ACC_LABEL and twin is not None
    plt.close(plot.figure)


def test_fig6_colours_sizes_as_the_caption(planted_tables) -> None:  # noqa: ANN001
    plot = F.fig6_complexity(planted_tables.trials)
    colours = {h.get_label(): h.get_color() for h in plot.figure.legends[0].legend_handles}
    assert colours["fc-small"] == F.SIZE_COLORS["small"] == "#009E73"  # green
    assert colours["fc-medium"] == F.SIZE_COLORS["medium"] == "#E69F00"  # orange
    assert colours["fc-large"] == F.SIZE_COLORS["large"] == "#0072B2"  # blue
    plt.close(plot.figure)


def test_fig7_draws_the_baselines_and_fig8_masking(planted_tables) -> None:  # noqa: ANN001
    plot = F.fig7_latent_size(planted_tables.trials)
    labels = {t.get_text() for t in plot.figure.legends[0].get_texts()}
    assert {"PCA (pca-small)", "RP (rp-small)", "λ = 0", "λ = 1"} <= labels
    plt.close(plot.figure)
    plot = F.fig8_embedding_width(planted_tables.trials)
    labels = {t.get_text() for t in plot.figure.legends[0].get_texts()}
    assert {"v1 masking (λ = 1)", "v2 masking (λ = 1)", "λ = 0.5"} <= labels
    plt.close(plot.figure)


def test_fig12_is_missing_with_the_reason(planted_tables) -> None:  # noqa: ANN001
    with pytest.raises(MissingData, match="needs unmasked vit-\\* trials on FashionMNIST"):
        F.fig12_vit_fashion_mnist(planted_tables.trials)


def test_figures_name_what_is_missing_on_a_sparse_sweep(planted_tables) -> None:  # noqa: ANN001
    only_cnn = planted_tables.trials[planted_tables.trials["family"] == "cnn"]
    for fn, needs in ((F.fig6_complexity, "latent_dim=16"), (F.fig7_latent_size, "two or more latent sizes"),
                      (F.fig8_embedding_width, "embedding widths"), (F.fig9_fc_mnist, "fc-\\*"),
                      (F.fig13_vit_masking, "mask_ratio > 0")):
        with pytest.raises(MissingData, match=needs):
            fn(only_cnn)
    with pytest.raises(MissingData, match="latent_dim=3 at λ 0, 0.2, 1"):
        F.fig4_latent_spaces(only_cnn, loader=None)
    with pytest.raises(MissingData, match="fc-small with latent_dim=6"):
        F.fig15_reconstructions_fc_small_n6(only_cnn, loader=None)


def test_stand_in_datasets_are_named() -> None:
    import pandas as pd

    df = pd.DataFrame({"dataset": ["digits", "synthetic"], "input_shape": ["1x28x28", "1x28x28"]})
    assert F.datasets_like(df) == (["digits", "synthetic"],
                                   " Drawn on digits, synthetic (the paper: MNIST and FashionMNIST).")
    assert F.datasets_like(df, ["mnist"])[0] == ["digits", "synthetic"]
    assert F.datasets_like(df, ["fashion_mnist"])[0] == []


def test_latent_spaces_use_n3_models_at_lambda_0_02_1(planted_tables, fake_loader) -> None:  # noqa: ANN001
    plot = F.fig4_latent_spaces(planted_tables.trials, fake_loader, per_class=5)
    try:
        axes3d = [a for a in plot.figure.axes if hasattr(a, "get_zlabel")]
        assert len(axes3d) == 6  # 2 datasets x 3 lambdas
        assert {a.get_xlabel() for a in axes3d} == {"z1"} and {a.get_zlabel() for a in axes3d} == {"z3"}
        assert {"MNIST · λ = 0", "MNIST · λ = 0.2", "FashionMNIST · λ = 1"} <= axis_labels(plot.figure)
        assert sum(len(a.collections[0].get_offsets()) for a in axes3d) == 6 * 50  # 5 per class x 10 classes
        loaded = planted_tables.trials.set_index("trial_id").loc[fake_loader.loaded]
        assert set(loaded["latent_dim"]) == {3} and set(loaded["lam"]) == {0.0, 0.2, 1.0}
        assert set(loaded["model"]) == {"fc-small"} and png_colours(plot.figure) > 20
    finally:
        plt.close(plot.figure)


def test_reconstructions_put_inputs_beside_each_lambda(planted_tables, fake_loader) -> None:  # noqa: ANN001
    plot = F.fig5_reconstructions(planted_tables.trials, fake_loader)
    titles = axis_labels(plot.figure)
    assert {"MNIST: input", "FashionMNIST: input", "λ = 0", "λ = 0.2", "λ = 1"} <= titles
    assert png_colours(plot.figure) > 20
    plt.close(plot.figure)
    plot = F.fig15_reconstructions_fc_small_n6(planted_tables.trials, fake_loader)
    titles = axis_labels(plot.figure)
    assert {"MNIST: input", "λ = 0", "λ = 1"} <= titles and "λ = 0.2" not in titles
    assert "FashionMNIST: input" not in titles  # Fig. 15 is MNIST only
    loaded = planted_tables.trials.set_index("trial_id").loc[fake_loader.loaded[-2:]]
    assert set(loaded["latent_dim"]) == {6} and set(loaded["model"]) == {"fc-small"}
    plt.close(plot.figure)


def test_exemplar_is_the_median_seed(planted_tables) -> None:  # noqa: ANN001
    t = planted_tables.trials
    g = t[(t["model"] == "fc-small") & (t["dataset"] == "mnist") & (t["latent_dim"] == 3) & (t["lam"] == 0.2)]
    assert F.exemplar(g)["seed"] == 1  # losses rise with the seed: seed 1 is the median


def test_training_curves(planted_tables) -> None:  # noqa: ANN001
    ids = F.select_curve_trials(planted_tables.trials)
    chosen = planted_tables.trials.set_index("trial_id").loc[ids]
    assert chosen["config"].nunique() == 1 and sorted(chosen["lam"]) == [0.0, 0.2, 0.5, 1.0]
    plot = F.training_curves(planted_tables.epochs, trials=planted_tables.trials)
    assert {"epoch", ACC_LABEL, MSE_LABEL} <= axis_labels(plot.figure)
    assert [len(line.get_xdata()) for line in plot.figure.axes[0].lines] == [3, 3, 3, 3]
    assert png_colours(plot.figure) > 20
    plt.close(plot.figure)
    with pytest.raises(MissingData):
        F.training_curves(planted_tables.epochs, trial_ids=["nope"])


def test_a_collapsed_latent_is_called_out(planted_tables, fake_loader) -> None:  # noqa: ANN001
    lam1 = set(planted_tables.trials.loc[planted_tables.trials["lam"] == 1.0, "trial_id"])
    build = fake_loader.model

    def model(trial_id: str):  # noqa: ANN202 - lambda = 1 models with dead units: z = ReLU(0) for every image
        m = build(trial_id)
        if trial_id in lam1:
            for p in m.encoder.parameters():
                p.data.zero_()
        return m

    fake_loader.model = model
    plot = F.fig4_latent_spaces(planted_tables.trials, fake_loader, per_class=2)
    assert "The latent of MNIST λ=1, FashionMNIST λ=1 is one point for every image" in plot.source
    plt.close(plot.figure)
