"""The sweep CLI commands that need no Ray: grid count/show, status, resume/launch input errors."""

import json

from click.testing import CliRunner

from db import Store
from pipeline.cli import main
from pipeline.grid import load_grid


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_grid_count_of_the_paper_grid():
    res = run("grid", "count", "grids/paper.yaml")
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert lines[-1] == f"total: {len(load_grid('grids/paper.yaml').specs)}"
    table = {tuple(l.split()[:2]): int(l.split()[2]) for l in lines[2:-1] if not l.startswith("(")}
    assert table[("fc-small", "mnist")] == 9 * 12 * 10
    assert table[("vit-large", "cifar10")] == 12 * 5
    assert sum(table.values()) == int(lines[-1].split()[1])


def test_grid_show_lists_every_spec(tmp_path):
    res = run("grid", "show", "grids/quickstart.yaml", "--json")
    rows = [json.loads(l) for l in res.output.splitlines()]
    grid = load_grid("grids/quickstart.yaml")
    assert [r["spec_id"] for r in rows] == [s.spec_id for e in grid.experiments for s in e.specs]
    assert {r["dataset"] for r in rows} == {"digits"}
    text = run("grid", "show", "grids/quickstart.yaml").output
    assert "# fc-small-n3: 18 trials" in text and "fc-large/digits n=16 lam=0.99 seed=1" in text


def test_grid_errors_exit_2_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3, colour: red}\n")
    for cmd in ("count", "show"):
        res = CliRunner().invoke(main, ["grid", cmd, str(bad)])
        assert res.exit_code == 2
        assert res.output.strip().splitlines() == [
            f"Error: {bad}: experiment 1: unknown field 'colour'; allowed: " + res.output.split("allowed: ")[1].strip()
        ]


def test_status_of_a_store_without_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    grid = load_grid("grids/quickstart.yaml")
    store.create_sweep(grid.name, grid.text)
    store.upsert_trials(grid.name, list(grid.specs))
    res = run("status", "--store", url, "--sweep", "quickstart", "--json")
    info = json.loads(res.output)
    assert info["counts"]["pending"] == 60 and info["total"] == 60 and info["eta_s"] is None
    assert {r["model"] for r in info["by_model_dataset"]} == {"fc-small", "fc-medium", "fc-large"}
    text = run("status", "--store", url).output
    assert "pending 60" in text and "fc-medium" in text and "ETA: unknown" in text


def test_status_watch_stops_when_nothing_is_left(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url).create_sweep("done", "")
    res = CliRunner().invoke(main, ["status", "--store", url, "--sweep", "done", "--watch", "--interval", "0.2"])
    assert res.exit_code == 0 and res.output.count("sweep done") == 1


def test_status_and_resume_unknown_sweep(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url).create_sweep("real", "")
    res = CliRunner().invoke(main, ["status", "--store", url, "--sweep", "nope"])
    assert res.exit_code == 2 and "no sweep named 'nope'" in res.output and "real" in res.output
    res = CliRunner().invoke(main, ["resume", "--store", url, "--sweep", "nope", "--artifacts", str(tmp_path / "a")])
    assert res.exit_code == 2 and "sweep 'nope' is not in the store; sweeps: real" in res.output


def test_launch_with_unreachable_store_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["launch", "--grid", "grids/quickstart.yaml", "--store",
                                    "postgresql+psycopg://u:secret@127.0.0.1:1/x", "--artifacts", str(tmp_path / "a")])
    assert res.exit_code == 1
    assert len(res.output.strip().splitlines()) == 1 and "secret" not in res.output


def test_bad_scheduling_flags_exit_2(tmp_path):
    for flags in (["--cpus-per-trial", "0"], ["--gpus-per-trial", "-1"], ["--max-concurrent", "0"]):
        res = CliRunner().invoke(main, ["launch", "--grid", "grids/quickstart.yaml", *flags])
        assert res.exit_code == 2, flags


def test_unreachable_ray_address_fails_fast_and_writes_no_sweep(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = CliRunner().invoke(main, ["launch", "--grid", "grids/quickstart.yaml", "--store", url,
                                    "--artifacts", str(tmp_path / "a"), "--address", "127.0.0.1:1"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == ["Error: cannot join the Ray cluster at 127.0.0.1:1: Connection refused"]
    assert Store(url).list_sweeps() == []
    res = CliRunner().invoke(main, ["resume", "--store", url, "--artifacts", str(tmp_path / "a"), "--address", "nohost"])
    assert res.exit_code == 1 and "--address must be 'auto', 'HOST:PORT' or 'ray://HOST:PORT'" in res.output
