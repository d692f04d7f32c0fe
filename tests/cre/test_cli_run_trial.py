import json

from click.testing import CliRunner

from cre.checkpoint import load_model
from pipeline.cli import main

ARGS = ["run-trial", "--model", "fc-small", "--dataset", "synthetic", "--latent-dim", "4", "--epochs", "2",
        "--batch-size", "256", "--lam", "0.3", "--seed", "2", "--device", "cpu"]


def test_run_trial_json_and_save(tmp_path):
    out = tmp_path / "best.pt"
    res = CliRunner().invoke(main, ARGS + ["--json", "--save", str(out)])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert set(payload) == {"spec_id", "spec", "epochs", "best_epoch"}
    assert [e["epoch"] for e in payload["epochs"]] == [1, 2]
    keys = {"epoch", "train_loss", "train_mse", "train_ce", "test_loss", "test_mse", "test_ce", "test_acc",
            "train_seconds"}
    assert keys <= set(payload["epochs"][0])
    assert payload["spec"]["lam"] == 0.3 and payload["spec"]["seed"] == 2
    assert payload["best_epoch"] in (1, 2)
    assert "epoch    1/2" in res.stderr
    model, spec, metrics = load_model(out)
    assert spec.spec_id == payload["spec_id"] and metrics.epoch == payload["best_epoch"]


def test_run_trial_without_json_prints_progress_only():
    res = CliRunner().invoke(main, ARGS)
    assert res.exit_code == 0 and res.stdout == ""
    assert res.stderr.count("epoch ") == 2


def test_bad_flags_exit_2_one_line():
    bad = [
        (["--lam", "2"], "lam must be in [0, 1], got 2.0"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--model", "fc-tiny"], "'fc-tiny' is not one of"),
        (["--latent-dim", "0"], "latent_dim must be > 0"),
    ]
    for extra, fragment in bad:
        res = CliRunner().invoke(main, ARGS + extra)
        assert res.exit_code == 2, (extra, res.output)
        assert fragment in res.output
        assert "Traceback" not in res.output
        assert len([line for line in res.output.splitlines() if line.startswith("Error")]) == 1


def test_cnn_wrong_dataset_exit_2():
    res = CliRunner().invoke(main, ["run-trial", "--model", "cnn-large", "--dataset", "mnist"])
    assert res.exit_code == 2 and "takes 3x32x32 images" in res.output


def test_every_command_has_help():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for name, cmd in main.commands.items():
        r = CliRunner().invoke(main, [name, "--help"])
        assert r.exit_code == 0 and len((cmd.help or "").strip()) > 20, name
