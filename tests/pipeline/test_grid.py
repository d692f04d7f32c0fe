import textwrap

import pytest

from cre import LAMBDAS_PAPER
from pipeline.grid import GridError, load_grid, parse_grid

EXAMPLE = """
name: quick
defaults:
  dataset: digits
  epochs: 20
seeds: [0, 1]
experiments:
  - model: [fc-small, fc-medium]
    latent_dim: [3, 16]
    lam: [0.0, 0.5, 1.0]
  - name: cnn
    model: cnn-small
    lam: 1.0
    dropout: 0.3
    repeats: 3
    epochs: 5
"""


def test_cartesian_product_defaults_and_seeds():
    g = parse_grid(EXAMPLE, "x.yaml")
    assert g.name == "quick"
    fc, cnn = g.experiments
    assert len(fc.specs) == 2 * 2 * 3 * 2 and fc.name == "#1"
    assert {(s.model, s.latent_dim, s.lam, s.seed) for s in fc.specs} == {
        (m, n, lam, seed) for m in ("fc-small", "fc-medium") for n in (3, 16) for lam in (0.0, 0.5, 1.0) for seed in (0, 1)
    }
    assert all(s.dataset == "digits" and s.epochs == 20 for s in fc.specs)
    assert cnn.name == "cnn" and [s.seed for s in cnn.specs] == [0, 1, 2]
    assert all(s.epochs == 5 and s.dropout == 0.3 for s in cnn.specs)  # experiment overrides defaults
    assert len(g.specs) == 24 + 3 and g.duplicates == 0
    assert g.counts() == [("cnn-small", "digits", 3), ("fc-medium", "digits", 12), ("fc-small", "digits", 12)]


def test_duplicates_are_trained_once():
    text = EXAMPLE + "  - model: fc-small\n    latent_dim: 3\n    lam: 0.5\n"
    g = parse_grid(text)
    assert len(g.specs) == 27 and g.duplicates == 2


def test_order_and_ids_are_deterministic():
    a, b = parse_grid(EXAMPLE), parse_grid(EXAMPLE)
    assert [s.spec_id for s in a.specs] == [s.spec_id for s in b.specs]


def test_numeric_strings_from_yaml_1_1():
    g = parse_grid("name: x\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3, lr_encoder: 1e-4}\n")
    assert g.specs[0].lr_encoder == 1e-4


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("name: x\nexperiments: [\n", ["YAML syntax error at line"]),
        ("- 1\n- 2\n", ["a grid must be a mapping"]),
        ("experiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3}\n", ["field 'name'", "required"]),
        ("name: x\n", ["field 'experiments' must be a non-empty list"]),
        ("name: x\nexperiments: []\n", ["field 'experiments' must be a non-empty list"]),
        ("name: x\nexperimnts: []\n", ["unknown top-level key 'experimnts'", "allowed: name"]),
        ("name: x\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3, lamda: 0.5}\n",
         ["experiment 1", "unknown field 'lamda'", "allowed:", "lam,"]),
        ("name: x\nexperiments:\n  - {name: big, model: fc-small, dataset: digits, latent_dim: 3, lam: [0.5, 2]}\n",
         ["experiment 1 (big)", "lam=2", "lam must be in [0, 1]"]),
        ("name: x\nexperiments:\n  - {model: fc-tiny, dataset: digits, latent_dim: 3}\n",
         ["model must be one of", "fc-small", "got 'fc-tiny'"]),
        ("name: x\nexperiments:\n  - {model: fc-small, dataset: digits}\n", ["latent_dim is required"]),
        ("name: x\nexperiments:\n  - {model: fc-small, latent_dim: 3}\n", ["field 'dataset' is required"]),
        ("name: x\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: []}\n", ["'latent_dim' is an empty list"]),
        ("name: x\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3, seed: 1}\n", ["seeds: [..]"]),
        ("name: x\nrepeats: 0\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3}\n",
         ["'repeats' must be an integer >= 1"]),
        ("name: x\nseeds: [1, 1]\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3}\n", ["lists a seed twice"]),
        ("name: x\nseeds: [0]\nrepeats: 2\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3}\n",
         ["either 'seeds' or 'repeats'"]),
        ("name: x\ndefaults: {lam: [0.1, 0.2]}\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3}\n",
         ["defaults: field 'lam' must be a single value"]),
        ("name: x\nexperiments:\n  - 3\n", ["experiment 1: must be a mapping"]),
        ("name: x\nexperiments:\n  - {model: cnn-large, dataset: digits}\n", ["cnn-large takes 3x32x32", "datasets allowed"]),
    ],
)
def test_errors_name_file_experiment_field_and_allowed(text, fragments):
    with pytest.raises(GridError) as info:
        parse_grid(text, "g.yaml")
    msg = str(info.value)
    assert msg.startswith("g.yaml: ")
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_missing_file(tmp_path):
    with pytest.raises(GridError, match="grid file not found"):
        load_grid(tmp_path / "nope.yaml")


def test_paper_grid_is_the_study():
    g = load_grid("grids/paper.yaml")
    assert 9_500 <= len(g.specs) <= 10_500
    fc = [s for s in g.specs if s.model.startswith("fc-")]
    assert {s.latent_dim for s in fc} == {3, 4, 6, 8, 16, 24, 70, 192, 512}
    assert {s.lam for s in fc} == set(LAMBDAS_PAPER)
    assert {s.dataset for s in fc} == {"mnist", "fashion_mnist"}
    vit = [s for s in g.specs if s.model == "vit-small"]
    assert {s.latent_dim for s in vit} == {4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}
    masked = [s for s in vit if s.mask_ratio]
    assert {s.mask_variant for s in masked} == {"v1", "v2"} and {s.lam for s in masked} == {1.0}
    assert all(s.mask_ratio == 0.66 for s in masked)
    cifar = [s for s in g.specs if s.dataset == "cifar10"]
    assert {s.model for s in cifar} == {"cnn-large", "vit-large"} and all(s.rotation == 15 for s in cifar)
    assert all(s.dropout == 0.3 for s in g.specs if s.model.startswith("cnn"))
    assert all(s.drop_path == 0.2 for s in g.specs if s.model.startswith("vit"))
    assert all(100 <= s.epochs <= 700 for s in g.specs)
    assert all(1e-4 <= s.lr_encoder <= 1e-3 for s in g.specs)
    assert {s.model.split("-")[0] for s in g.specs} >= {"fc", "cnn", "vit", "pca", "rp"}
    # at least five runs per configuration
    from collections import Counter

    per_config = Counter(s.replace(seed=0).spec_id for s in g.specs)
    assert min(per_config.values()) >= 5
