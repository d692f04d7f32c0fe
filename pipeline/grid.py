"""Grid files: YAML -> the sweep's list of TrialSpecs.

A grid names a sweep, sets ``defaults`` (any TrialSpec field), ``seeds`` (a list)
or ``repeats`` (N: seeds 0..N-1), and lists ``experiments``. In an experiment,
a list is an axis of a Cartesian product and a scalar is fixed; experiment
values override the defaults, and an experiment may set its own ``seeds`` /
``repeats`` and a ``name``::

    name: quickstart
    defaults: {dataset: digits, epochs: 20}
    seeds: [0, 1]
    experiments:
      - name: fc
        model: [fc-small, fc-medium]
        latent_dim: [3, 16]
        lam: [0.0, 0.5, 1.0]

Every problem is a ``GridError`` whose one-line message names the file, the
experiment, the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cre.spec import FIELD_NAMES, TrialSpec

GRID_KEYS = ("name", "description", "defaults", "seeds", "repeats", "experiments")
EXPERIMENT_KEYS = ("name", "seeds", "repeats")
_FLOAT_FIELDS = {f.name for f in dataclasses.fields(TrialSpec) if f.type in ("float", float)}
_INT_FIELDS = {"latent_dim", "epochs", "batch_size"}


class GridError(ValueError):
    """A grid file that cannot be expanded; the message is one line."""


@dataclass(frozen=True)
class Experiment:
    """One experiment block after expansion."""

    name: str
    specs: tuple[TrialSpec, ...]


@dataclass(frozen=True)
class Grid:
    """A parsed grid: the sweep name, the file's text and the unique specs in file order."""

    name: str
    path: str
    text: str
    experiments: tuple[Experiment, ...]
    specs: tuple[TrialSpec, ...]  # unique by spec_id, first occurrence order
    duplicates: int  # specs listed more than once across experiments (trained once)

    def counts(self) -> list[tuple[str, str, int]]:
        """(model, dataset, number of trials), sorted."""
        c = Counter((s.model, s.dataset) for s in self.specs)
        return sorted((m, d, n) for (m, d), n in c.items())


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and expand a grid file; raises GridError."""
    p = Path(path)
    if not p.is_file():
        raise GridError(f"{p}: grid file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"{p}: cannot read grid file ({exc})") from None
    return parse_grid(text, str(p))


def parse_grid(text: str, source: str = "<grid>") -> Grid:
    """Expand grid YAML text (``source`` names it in errors)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GridError(f"{source}: YAML syntax error{where}: {problem}") from None
    if not isinstance(doc, dict):
        raise GridError(f"{source}: a grid must be a mapping with keys {', '.join(GRID_KEYS)}; got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"{source}: unknown top-level key {unknown[0]!r}; allowed: {', '.join(GRID_KEYS)}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GridError(f"{source}: field 'name' (the sweep name) is required: a non-empty string")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise GridError(f"{source}: field 'defaults' must be a mapping of TrialSpec fields")
    _check_fields(defaults, source, "defaults", allow=())
    for key, value in defaults.items():
        if isinstance(value, list):
            raise GridError(f"{source}: defaults: field {key!r} must be a single value (put lists in an experiment)")
    top_seeds = _seeds(doc, source, "grid", default=[0])
    experiments = doc.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        raise GridError(f"{source}: field 'experiments' must be a non-empty list of experiment mappings")

    expanded: list[Experiment] = []
    seen: dict[str, TrialSpec] = {}
    duplicates = 0
    for i, exp in enumerate(experiments, 1):
        where = f"experiment {i}"
        if not isinstance(exp, dict):
            raise GridError(f"{source}: {where}: must be a mapping of fields, got {type(exp).__name__}")
        ename = exp.get("name", f"#{i}")
        if not isinstance(ename, str):
            raise GridError(f"{source}: {where}: field 'name' must be a string, got {ename!r}")
        where = f"experiment {i} ({ename})" if "name" in exp else where
        _check_fields(exp, source, where, allow=EXPERIMENT_KEYS)
        seeds = _seeds(exp, source, where, default=top_seeds)
        fields = {**defaults, **{k: v for k, v in exp.items() if k not in EXPERIMENT_KEYS}}
        axes: dict[str, list[Any]] = {}
        for key, value in fields.items():
            values = value if isinstance(value, list) else [value]
            if not values:
                raise GridError(f"{source}: {where}: field {key!r} is an empty list; give at least one value")
            axes[key] = [_coerce(key, v) for v in values]
        axes["seed"] = seeds
        specs: list[TrialSpec] = []
        keys = list(axes)
        for combo in itertools.product(*(axes[k] for k in keys)):
            values = dict(zip(keys, combo))
            try:
                spec = TrialSpec(**values)
            except ValueError as exc:
                field = _field_of(str(exc))
                shown = f" (with {field}={values.get(field)!r})" if field and field in values else ""
                raise GridError(f"{source}: {where}{shown}: {exc}") from None
            except TypeError as exc:  # a missing required field
                raise GridError(f"{source}: {where}: {_missing_message(exc)}") from None
            specs.append(spec)
            if spec.spec_id in seen:
                duplicates += 1
            else:
                seen[spec.spec_id] = spec
        expanded.append(Experiment(ename, tuple(specs)))
    if not seen:
        raise GridError(f"{source}: the grid expands to no trials")
    return Grid(name.strip(), source, text, tuple(expanded), tuple(seen.values()), duplicates)


def _check_fields(mapping: dict, source: str, where: str, allow: tuple[str, ...]) -> None:
    for key in mapping:
        if key == "seed":
            raise GridError(f"{source}: {where}: set seeds with 'seeds: [..]' or 'repeats: N', not 'seed'")
        if key not in FIELD_NAMES and key not in allow:
            allowed = [f for f in FIELD_NAMES if f != "seed"] + list(allow)
            raise GridError(f"{source}: {where}: unknown field {key!r}; allowed: {', '.join(allowed)}")


def _seeds(mapping: dict, source: str, where: str, default: list[int]) -> list[int]:
    if "seeds" in mapping and "repeats" in mapping:
        raise GridError(f"{source}: {where}: give either 'seeds' or 'repeats', not both")
    if "repeats" in mapping:
        n = mapping["repeats"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise GridError(f"{source}: {where}: field 'repeats' must be an integer >= 1, got {n!r}")
        return list(range(n))
    if "seeds" in mapping:
        seeds = mapping["seeds"]
        seeds = seeds if isinstance(seeds, list) else [seeds]
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise GridError(f"{source}: {where}: field 'seeds' must be a non-empty list of integers >= 0, got {mapping['seeds']!r}")
        if len(set(seeds)) != len(seeds):
            raise GridError(f"{source}: {where}: field 'seeds' lists a seed twice: {seeds!r}")
        return list(seeds)
    return list(default)


def _coerce(key: str, value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; accept numeric strings for numeric fields."""
    if isinstance(value, str) and (key in _FLOAT_FIELDS or key in _INT_FIELDS):
        try:
            number = float(value)
        except ValueError:
            return value
        if key in _INT_FIELDS and number.is_integer():
            return int(number)
        return number if math.isfinite(number) else value
    return value


def _field_of(message: str) -> str | None:
    first = message.split(" ", 1)[0]
    return first if first in FIELD_NAMES else None


def _missing_message(exc: TypeError) -> str:
    text = str(exc)
    for f in ("model", "dataset"):
        if f"'{f}'" in text:
            return f"field {f!r} is required (in the experiment or in defaults)"
    return text
