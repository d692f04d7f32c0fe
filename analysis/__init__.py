"""analysis: tidy tables from the store or its Parquet export, one function per figure, the report.

    tables = load_tables(open_source(store="sqlite:///cre-results/results.db"), sweep="quickstart")
    plot = fig6_complexity(tables.trials)          # a Plot: .figure (matplotlib), .source (what it drew)
    build_report(tables, "cre-results/report")     # every figure, synergy.csv, index.html

Reads only: nothing here writes to the store.
"""

from analysis.figures import (
    MissingData,
    ModelLoader,
    Plot,
    fig3_performance_boxplots,
    fig4_latent_spaces,
    fig5_reconstructions,
    fig6_complexity,
    fig7_latent_size,
    fig8_embedding_width,
    fig9_fc_mnist,
    fig10_fc_fashion_mnist,
    fig11_vit_mnist,
    fig12_vit_fashion_mnist,
    fig13_vit_masking,
    fig14_cnn_and_cifar,
    fig15_reconstructions_fc_small_n6,
    training_curves,
)
from analysis.loaders import CheckpointModels, locate_in_store, locate_in_table
from analysis.report import FIGURES, ReportResult, build_report
from analysis.stats import diff_ci, mean_ci, summarise, synergy_table
from analysis.tables import (
    ParquetSource,
    SourceError,
    StoreSource,
    Tables,
    epochs_table,
    load_tables,
    open_source,
    trials_table,
)

__all__ = [
    "FIGURES", "CheckpointModels", "MissingData", "ModelLoader", "ParquetSource", "Plot", "ReportResult",
    "SourceError", "StoreSource", "Tables", "build_report", "diff_ci", "epochs_table",
    "fig3_performance_boxplots", "fig4_latent_spaces", "fig5_reconstructions", "fig6_complexity",
    "fig7_latent_size", "fig8_embedding_width", "fig9_fc_mnist", "fig10_fc_fashion_mnist", "fig11_vit_mnist",
    "fig12_vit_fashion_mnist", "fig13_vit_masking", "fig14_cnn_and_cifar", "fig15_reconstructions_fc_small_n6",
    "load_tables", "locate_in_store", "locate_in_table", "mean_ci", "open_source", "summarise", "synergy_table",
    "training_curves", "trials_table",
]
