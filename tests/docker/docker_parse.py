"""Reading docker/ the way Docker and Compose do, for tests that run without a Docker engine.

* compose files: YAML with Compose's tags (``!reset``) and its ``${VAR}`` interpolation;
* Dockerfiles: logical instructions (continuation lines joined, comments dropped), ARG defaults;
* shell command lines: the ``pip install`` and ``cre-pipeline`` commands in them;
* the CLI: which ``CRE_*`` environment variables the package reads, and parsing a
  documented ``cre-pipeline ...`` command line with click without running it.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
PACKAGES = ("cre", "db", "pipeline", "analysis")


# --------------------------------------------------------------------------- compose
@dataclass(frozen=True)
class Tagged:
    """A value carrying a Compose merge tag (``!reset``, ``!override``)."""

    tag: str
    value: Any


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader plus Compose's ``!reset`` / ``!override`` tags (override files use them)."""


def _tagged(loader: ComposeLoader, suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return Tagged("!" + suffix, value)


ComposeLoader.add_multi_constructor("!", _tagged)


def load_compose(name: str = "compose.yaml") -> dict[str, Any]:
    return yaml.load((DOCKER / name).read_text(), Loader=ComposeLoader)  # noqa: S506 - a SafeLoader subclass


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution over a loaded file: ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:+r}``, ``$$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, Tagged):
        return Tagged(value.tag, interpolate(value.value, env))
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        present, non_empty = name in env, bool(env.get(name))
        if op == ":-":
            return env[name] if non_empty else arg
        if op == "-":
            return env[name] if present else arg
        if op in (":?", "?"):
            if (op == ":?" and not non_empty) or (op == "?" and not present):
                raise KeyError(f"required variable {name}: {arg}")
            return env[name]
        if op == ":+":
            return arg if non_empty else ""
        if op == "+":
            return arg if present else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(one, value)


def merge_compose(base: Any, override: Any) -> Any:
    """Compose's merge of an override file onto a base (mappings merged, ``!reset`` removes, else replaced)."""
    if isinstance(override, Tagged):
        return None if override.tag == "!reset" else override.value
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            merged = merge_compose(base.get(k), v)
            if merged is None and isinstance(v, Tagged) and v.tag == "!reset":
                out.pop(k, None)
            else:
                out[k] = merged
        return out
    return override


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (Compose allows a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (volume name or host path) of a service's short-syntax volumes."""
    out = {}
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            out[item["target"]] = item.get("source", "")
        else:
            source, target = item.split(":")[:2]
            out[target] = source
    return out


# --------------------------------------------------------------------------- Dockerfile
@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ARG, ...
    args: str  # the rest, continuation lines joined as Docker joins them
    line: int  # first line number


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Logical instructions: comment lines dropped (also inside continuations), ``\\``-newline removed."""
    out: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if not buf:
            start = n
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1]
            continue
        buf += raw
        keyword, _, rest = buf.strip().partition(" ")
        out.append(Instruction(keyword.upper(), rest.strip(), start))
        buf = ""
    assert not buf, "the Dockerfile ends inside a continuation line"
    return out


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """Every ``ARG NAME=default`` (later ones win); ``ARG NAME=`` gives ''."""
    out = {}
    for ins in instructions:
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            out[name.strip()] = default.strip().strip('"')
    return out


def env_values(instructions: list[Instruction]) -> dict[str, str]:
    """Every ``ENV KEY=VALUE`` pair (later ones win)."""
    out = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                out[key] = value
    return out


# --------------------------------------------------------------------------- shell lines
def simple_commands(line: str) -> list[list[str]]:
    """A one-line shell command split at ``&&``, ``||``, ``;`` and ``|`` into argument lists (no expansion)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    out, cur = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(token)
    if cur:
        out.append(cur)
    return out


def pip_installs(line: str) -> list[list[str]]:
    """The arguments after ``pip install`` of every such command in a shell line."""
    return [cmd[2:] for cmd in simple_commands(line) if cmd[:2] == ["pip", "install"]]


def readme_section(title: str) -> str:
    """The text of README.md's ``## title`` section (up to the next ``## ``)."""
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", markdown, re.S | re.M)


# --------------------------------------------------------------------------- the CLI
def cli_envvars() -> set[str]:
    """The ``envvar=`` of every option of every ``cre-pipeline`` command."""
    from pipeline.cli import main

    found: set[str] = set()

    def walk(cmd: click.Command) -> None:
        for p in cmd.params:
            envvar = getattr(p, "envvar", None)
            if envvar:
                found.update([envvar] if isinstance(envvar, str) else envvar)
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(main)
    return found


def package_envvars() -> dict[str, set[str]]:
    """``CRE_*`` names the package's code reads: string constants that are exactly such a name.

    Covers ``envvar="CRE_X"``, ``os.environ.get("CRE_X")``, ``os.environ["CRE_X"]`` and
    constants such as ``ENV_VAR = "CRE_STORE"``; prose mentioning a variable is not counted.
    Returns name -> files.
    """
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(
                        r"CRE_[A-Z0-9_]+", node.value):
                    found.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    return found


def parse_cli(argv: list[str]) -> click.Context:
    """Parse ``cre-pipeline ARGV`` down to its leaf command, as click does before running it (runs nothing).

    Unknown commands, unknown options, bad values and missing required options raise click's errors.
    """
    from pipeline.cli import main

    cmd: click.Command = main
    args, name = list(argv), "cre-pipeline"
    while isinstance(cmd, click.Group):  # the groups take no options of their own but --help/--version
        assert args, f"cre-pipeline {' '.join(argv)}: no command after {name!r}"
        name, *args = args
        sub = cmd.get_command(None, name)  # type: ignore[arg-type]
        assert sub is not None, f"cre-pipeline {' '.join(argv)}: no command {name!r}"
        cmd = sub
    ctx = cmd.make_context(name, args)
    assert not ctx.args, f"unexpected arguments {ctx.args} in cre-pipeline {' '.join(argv)}"
    return ctx


def cre_pipeline_commands(text: str) -> list[list[str]]:
    """The argument lists of the ``cre-pipeline ...`` commands written out in shell-ish text or its comments.

    A command starts a line (after ``#``, spaces or ``$``) or follows ``exec [-T] SERVICE``
    (``docker compose exec ray-head cre-pipeline ...``); prose that merely names the tool
    is not a command. Lines ending in ``\\`` are joined; a command ends at ``&&``, ``|``,
    ``;``, a backtick, a ``#`` comment or the end of the line. Commands with a ``...``
    elision are left out.
    """
    text = re.sub(r"\\\n\s*#?\s*", " ", text)
    start = r"(?:^\s*#?\s*(?:\$\s+)?|\bexec\s+(?:-T\s+)?[\w-]+\s+)"
    out = []
    for line in text.splitlines():
        for m in re.finditer(start + r"cre-pipeline\s+([^\n]*)", line):
            rest = re.split(r"&&|\|\||\||;|`|\s#", m.group(1))[0].strip()
            argv = shlex.split(rest)
            if argv and "..." not in argv:
                out.append(argv)
    return out
