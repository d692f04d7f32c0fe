"""The artifact root on non-local filesystems, as a cluster uses it (CRE_ARTIFACTS / --artifacts).

`memory://` stands in for an object store (it is in-process only, so a real
cluster uses a shared folder or s3://, gs:// with s3fs / gcsfs); a protocol
whose fsspec package is missing must be one clear line, before anything runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import uuid
from pathlib import Path

import fsspec
import pytest
from click.testing import CliRunner

from cre import Trainer, TrialSpec
from cre.checkpoint import from_bytes, to_bytes
from db import Store
from docker_parse import ROOT
from pipeline.artifacts import ArtifactError, ArtifactRoot
from pipeline.cli import main
from pipeline.worker import WorkerConfig, run_attempt

# (protocol, the fsspec package it needs): the first whose package is not installed here is "missing"
REMOTE = [("s3", "s3fs"), ("gs", "gcsfs"), ("abfs", "adlfs"), ("hf", "huggingface_hub")]


def missing_protocol() -> tuple[str, str]:
    for protocol, package in REMOTE:
        if importlib.util.find_spec(package) is None:
            return protocol, package
    pytest.fail(f"every one of {[p for _, p in REMOTE]} is installed: add a protocol whose package is not")


@pytest.fixture
def memory_root() -> ArtifactRoot:
    """A fresh prefix on fsspec's in-memory filesystem, removed afterwards."""
    prefix = f"memory://cre-test-{uuid.uuid4().hex[:8]}/artifacts"
    yield ArtifactRoot.open(prefix)
    fs, top = fsspec.filesystem("memory"), prefix.split("://", 1)[1].split("/", 1)[0]
    if fs.exists(top):
        fs.rm(top, recursive=True)


def test_memory_root_write_read_and_sha256(memory_root):
    assert memory_root.root.startswith("memory://")
    uri = memory_root.uri_for("ab" * 32, "last")
    assert uri == f"{memory_root.root}/ab/{'ab' * 32}/last.pt"
    data = os.urandom(4096)
    sha, size = memory_root.write(uri, data)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), 4096)
    assert ArtifactRoot.read(uri, sha) == data
    # atomic: no temporary file is left beside the checkpoint
    fs, path = fsspec.core.url_to_fs(uri)
    assert fs.ls(path.rsplit("/", 1)[0], detail=False) == [path]
    with pytest.raises(ArtifactError, match="sha256 does not match the store's record"):
        ArtifactRoot.read(uri, hashlib.sha256(b"other").hexdigest())
    memory_root.write(uri, b"replaced")
    assert ArtifactRoot.read(uri) == b"replaced"


def test_missing_file_is_an_artifact_error(memory_root):
    with pytest.raises(ArtifactError, match="cannot read"):
        ArtifactRoot.read(memory_root.uri_for("cd" * 32, "best"))


def test_protocol_without_its_package_is_one_clear_line():
    protocol, package = missing_protocol()
    with pytest.raises(ArtifactError) as info:
        ArtifactRoot.open(f"{protocol}://bucket/cre")
    message = str(info.value)
    assert "\n" not in message
    assert f"no filesystem for '{protocol}://'" in message and package in message


def test_cli_refuses_the_missing_protocol_before_touching_the_store(tmp_path):
    protocol, package = missing_protocol()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    res = CliRunner().invoke(main, ["launch", "--grid", str(ROOT / "grids" / "quickstart.yaml"), "--store", url,
                                    "--artifacts", f"{protocol}://bucket/cre", "--no-progress"])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: artifact root ") and package in lines[0], res.output
    assert not (tmp_path / "store.db").exists()


def test_cli_takes_the_artifact_root_from_the_environment(tmp_path):
    """CRE_ARTIFACTS is what compose sets: the CLI must read it (here: a missing protocol, refused)."""
    protocol, _ = missing_protocol()
    res = CliRunner().invoke(main, ["launch", "--grid", str(ROOT / "grids" / "quickstart.yaml"), "--no-progress"],
                             env={"CRE_ARTIFACTS": f"{protocol}://from-env/cre",
                                  "CRE_STORE": f"sqlite:///{tmp_path / 'store.db'}"})
    assert res.exit_code == 2 and f"{protocol}://from-env/cre" in res.output


@pytest.mark.parametrize("form", ["file://{dir}", "{dir}"])
def test_file_uri_is_a_local_folder(tmp_path, form):
    root = ArtifactRoot.open(form.format(dir=tmp_path / "art"))
    assert root.root == str(tmp_path / "art") and (tmp_path / "art").is_dir()
    uri = root.uri_for("ef" * 32, "best")
    sha, _ = root.write(uri, b"payload")
    assert Path(uri).read_bytes() == b"payload" and ArtifactRoot.read(uri, sha) == b"payload"


# --------------------------------------------------------------------------- a worker, end to end
SPEC = dict(model="fc-small", dataset="synthetic", latent_dim=4, lam=0.5, epochs=3, batch_size=256)


def run_trial_with_root(tmp_path: Path, root: str, seed: int):
    """One trial through pipeline.worker.run_attempt, resumed from a `last` checkpoint written under ``root``."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spec = TrialSpec(**SPEC, seed=seed)
    store.upsert_trials("uris", [spec])
    artifacts = ArtifactRoot(root)
    # a previous attempt got through epoch 1 and left its `last` checkpoint under the root
    first = Trainer(spec, device="cpu", threads=1)
    first.run_epoch()
    uri = artifacts.uri_for(spec.spec_id, "last")
    sha, size = artifacts.write(uri, to_bytes(first.state_dict()))
    store.record_checkpoint(spec.spec_id, "last", 1, uri, sha, size)
    cfg = WorkerConfig(store_url=store.url, artifacts=root, run_id="uris", device="cpu", threads=1,
                       checkpoint_interval_s=0)
    outcome = run_attempt(spec, cfg, store=store)
    return store, spec, outcome


def check_completed_from_checkpoint(store, spec, outcome, root: str):
    assert outcome.status == "completed", outcome
    assert outcome.start_epoch == 2 and outcome.epochs_run == 2  # resumed: read `last` back through the root
    assert [e.epoch for e in store.epochs(spec.spec_id)] == [2, 3]
    best = store.get_checkpoint(spec.spec_id, "best")
    assert best.uri.startswith(root.rstrip("/") + "/")
    payload = from_bytes(ArtifactRoot.read(best.uri, best.sha256), "cpu")
    assert payload["epoch"] == best.epoch and payload["spec"] == spec.to_dict()


def test_worker_on_a_memory_root(tmp_path, memory_root):
    store, spec, outcome = run_trial_with_root(tmp_path, memory_root.root, seed=1)
    check_completed_from_checkpoint(store, spec, outcome, memory_root.root)


def test_worker_on_a_file_uri_root_as_the_cli_opens_it(tmp_path):
    root = ArtifactRoot.open(f"file://{tmp_path / 'art'}").root
    store, spec, outcome = run_trial_with_root(tmp_path, root, seed=2)
    check_completed_from_checkpoint(store, spec, outcome, root)
    assert Path(store.get_checkpoint(spec.spec_id, "best").uri).is_file()


def test_worker_on_a_raw_file_uri_root(tmp_path, monkeypatch):
    """A `file://` root handed to the worker as is (library use, no ArtifactRoot.open) lands in that folder.

    It used to be taken for a relative path: the checkpoints went to ./file:/... under the worker's
    working directory.
    """
    monkeypatch.chdir(tmp_path)
    root = f"file://{tmp_path / 'art'}"
    store, spec, outcome = run_trial_with_root(tmp_path, root, seed=3)
    check_completed_from_checkpoint(store, spec, outcome, root)
    assert not (tmp_path / "file:").exists()
    best = store.get_checkpoint(spec.spec_id, "best")
    assert (tmp_path / "art" / best.uri.split("/art/", 1)[1]).is_file()
