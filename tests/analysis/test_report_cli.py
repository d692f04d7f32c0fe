"""``build_report`` on the planted store, and ``cre-pipeline report`` end to end on a tiny real sweep.

The real sweep is trained by ``pipeline.worker.run_attempt`` -- the code a Ray
worker runs: store rows and best/last checkpoint files exactly as a launch
writes them -- without starting Ray (seconds instead of tens of seconds).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SWEEP

from analysis.report import FIGURES, build_report
from cre.spec import TrialSpec
from db import Store
from pipeline.cli import main
from pipeline.worker import WorkerConfig, run_attempt

pytestmark = pytest.mark.timeout(300)

E2E = "tiny"


def test_build_report_on_the_planted_store(planted_tables, fake_loader, tmp_path) -> None:  # noqa: ANN001
    result = build_report(planted_tables, tmp_path / "r", formats=("png",), loader=fake_loader)
    drawn = {f.key for f in result.figures if f.drawn}
    missing = {f.key: f.missing for f in result.figures if f.missing}
    assert not result.errors
    assert set(missing) == {"fig12_vit_fashion_mnist"}, missing  # no ViT on FashionMNIST was planted
    assert len(drawn) == len(FIGURES) - 1
    for f in result.figures:
        for rel in f.files:
            assert (tmp_path / "r" / rel).stat().st_size > 1000
    html = result.index.read_text()
    for fd in FIGURES:
        assert fd.title.replace("&", "&amp;") in html
    assert "needs unmasked vit-* trials on FashionMNIST" in html
    assert "2 trial(s) not completed are left out" in html
    assert "probably still improving" not in html  # planted best epochs are 2 of 3
    assert "<td class='allies'>allies</td>" in html and "<td class='antagonists'>antagonists</td>" in html
    syn = pd.read_csv(tmp_path / "r" / "synergy.csv")
    assert {"acc_diff", "acc_ci_low", "acc_ci_high", "mse_diff", "mse_ci_low", "mse_ci_high", "verdict"} <= set(syn.columns)
    allies = syn[syn["verdict"] == "allies"]
    assert set(allies["config_label"]) == {"fc-small · mnist · n=16"}  # the planted synergy, nothing else
    assert len(pd.read_csv(tmp_path / "r" / "trials.csv")) == len(planted_tables.trials)


def test_model_figures_without_checkpoints_are_listed_missing(planted_tables, tmp_path) -> None:  # noqa: ANN001
    result = build_report(planted_tables, tmp_path / "r", only=["4", "5", "fig15_reconstructions_n6"])
    assert [f.key for f in result.figures] == ["fig04_latent_spaces", "fig05_reconstructions",
                                               "fig15_reconstructions_n6"]
    assert all(f.missing and "checkpoint" in f.missing for f in result.figures)


def test_unconverged_trials_are_flagged(planted_tables, tmp_path) -> None:  # noqa: ANN001
    from dataclasses import replace

    trials = planted_tables.trials.copy()
    trials["best_epoch"] = trials["epochs"]  # every trial best at its last epoch
    result = build_report(replace(planted_tables, trials=trials), tmp_path / "r", only=["3"])
    assert f"{len(trials)} of {len(trials)} completed trials had their lowest test loss at their last epoch" \
        in result.index.read_text()


# --------------------------------------------------------------------------- a tiny real sweep
def tiny_specs() -> list[TrialSpec]:
    base = dict(dataset="synthetic", epochs=2, batch_size=256)
    specs = [TrialSpec(model="fc-small", latent_dim=3, lam=lam, seed=s, **base)
             for lam in (0.0, 0.2, 1.0) for s in (0, 1)]
    specs += [TrialSpec(model=m, latent_dim=16, lam=lam, seed=s, **base)
              for m in ("fc-small", "fc-large") for lam in (0.0, 0.5, 1.0) for s in (0, 1)]
    return specs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("tiny")
    url = f"sqlite:///{root / 'store.db'}"
    cfg = WorkerConfig(store_url=url, artifacts=str(root / "artifacts"), run_id="test", device="cpu", threads=1,
                       checkpoint_interval_s=0)
    with Store(url) as store:
        store.create_sweep(E2E, "")
        specs = tiny_specs()
        store.upsert_trials(E2E, specs)
        for spec in specs:
            assert run_attempt(spec, cfg, store=store).status == "completed"
        store.create_sweep("empty", "")
    return url, root


def cli(*args: str, env: dict | None = None):  # noqa: ANN201
    return CliRunner().invoke(main, list(args), env={"CRE_STORE": None, **(env or {})})


def drawn_keys(index: Path) -> set[str]:
    html = index.read_text()
    return {fd.key for fd in FIGURES if f"figures/{fd.key}.png" in html}


def test_report_from_the_store_end_to_end(tiny, tmp_path) -> None:  # noqa: ANN001
    url, _ = tiny
    out = tmp_path / "report"
    res = cli("report", "--store", url, "--sweep", E2E, "--out", str(out), "--format", "png,pdf")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out / "index.html")
    keys = drawn_keys(out / "index.html")
    assert {"fig03_performance", "fig04_latent_spaces", "fig05_reconstructions", "fig06_complexity",
            "fig07_latent_size", "fig09_fc_mnist", "training_curves"} <= keys
    for key in keys:
        assert (out / "figures" / f"{key}.png").stat().st_size > 1000 and (out / "figures" / f"{key}.pdf").exists()
    html = (out / "index.html").read_text()
    assert "Drawn on synthetic (the paper: MNIST and FashionMNIST)" in html
    assert "needs vit-* trials with mask_ratio &gt; 0" in html  # Fig. 13 listed with what is missing
    assert "completed" in html and "18" in html
    assert len(pd.read_csv(out / "synergy.csv")) == 1 + 1 + 1  # fc-small n=3 @0.2, fc-small/large n=16 @0.5
    assert "Drawn from store" in res.stderr or "store sqlite" in res.stderr


def test_report_from_the_parquet_export_and_unreachable_checkpoints(tiny, tmp_path) -> None:  # noqa: ANN001
    url, root = tiny
    export = tmp_path / "export"
    assert cli("export", "--store", url, "--out", str(export)).exit_code == 0
    out = tmp_path / "from-parquet"
    res = cli("report", "--parquet", str(export), "--sweep", E2E, "--out", str(out))
    assert res.exit_code == 0, res.output
    from_store = tmp_path / "from-store"
    assert cli("report", "--store", url, "--sweep", E2E, "--out", str(from_store)).exit_code == 0
    assert drawn_keys(out / "index.html") == drawn_keys(from_store / "index.html")
    pd.testing.assert_frame_equal(pd.read_csv(out / "synergy.csv"), pd.read_csv(from_store / "synergy.csv"))
    # the checkpoint files go away: the figures that need them are listed as missing, the rest still drawn
    moved = root / "artifacts-moved"
    shutil.move(root / "artifacts", moved)
    try:
        out2 = tmp_path / "no-files"
        res = cli("report", "--parquet", str(export), "--out", str(out2), "--only", "3,4,5")
        assert res.exit_code == 0, res.output
        assert drawn_keys(out2 / "index.html") == {"fig03_performance"}
        html = (out2 / "index.html").read_text()
        assert "unreachable" in html and "fig04_latent_spaces" in html
        assert "missing: best checkpoint of trial" in res.stderr
    finally:
        shutil.move(moved, root / "artifacts")


def test_report_of_an_empty_sweep_lists_everything_missing(tiny, tmp_path) -> None:  # noqa: ANN001
    url, _ = tiny
    res = cli("report", "--store", url, "--sweep", "empty", "--out", str(tmp_path / "e"))
    assert res.exit_code == 0, res.output
    assert drawn_keys(tmp_path / "e" / "index.html") == set()
    assert "No verdicts" in (tmp_path / "e" / "index.html").read_text()


@pytest.mark.parametrize("args,code,message", [
    (["--store", "{url}", "--parquet", "{tmp}"], 2, "give either --store or --parquet, not both"),
    (["--store", "{url}", "--sweep", "nope"], 1, "no sweep named 'nope'"),
    (["--store", "{url}", "--format", "png,jpg"], 2, "--format: unknown format 'jpg'"),
    (["--store", "{url}", "--only", "3,99"], 2, "--only: unknown figure(s) 99"),
    (["--parquet", "{tmp}/nope"], 1, "--parquet: no folder"),
    (["--store", "sqlite:///{tmp}/missing.db"], 1, "no SQLite store at"),
])
def test_cli_errors_are_one_line(tiny, tmp_path, args, code, message) -> None:  # noqa: ANN001
    url, _ = tiny
    args = [a.format(url=url, tmp=tmp_path) for a in args]
    res = cli("report", *args, "--out", str(tmp_path / "out"))
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.stderr


def test_without_store_or_parquet_the_default_store_is_used_if_it_exists(tiny, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    url, root = tiny
    monkeypatch.chdir(tmp_path)
    res = cli("report", "--out", "out")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "Error: give --store URL (or set CRE_STORE) or --parquet DIR (a `cre-pipeline export`); there is no store "
        f"at the default sqlite:///{tmp_path.resolve() / 'cre-results' / 'results.db'}"]
    (tmp_path / "cre-results").mkdir()
    for suffix in ("", "-wal", "-shm"):  # what `launch` without --store makes
        if (root / f"store.db{suffix}").exists():
            shutil.copy(root / f"store.db{suffix}", tmp_path / "cre-results" / f"results.db{suffix}")
    res = cli("report", "--sweep", E2E, "--out", "out", "--only", "3")
    assert res.exit_code == 0, res.output
    assert drawn_keys(tmp_path / "out" / "index.html") == {"fig03_performance"}


def test_cre_store_env_is_the_default_store(tiny, tmp_path) -> None:  # noqa: ANN001
    url, _ = tiny
    res = cli("report", "--sweep", E2E, "--out", str(tmp_path / "env"), "--only", "6", env={"CRE_STORE": url})
    assert res.exit_code == 0, res.output
    assert drawn_keys(tmp_path / "env" / "index.html") == {"fig06_complexity"}
