"""docker/Dockerfile without a Docker engine: its install commands against README's, its RUN lines in bash."""

from __future__ import annotations

import fnmatch
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from docker_parse import (
    ROOT,
    Instruction,
    arg_defaults,
    code_blocks,
    dockerfile_instructions,
    env_values,
    pip_installs,
    readme_section,
    simple_commands,
)

DOCKERFILE = ROOT / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def runs(instructions: list[Instruction]) -> list[str]:
    return [i.args for i in instructions if i.keyword == "RUN"]


def readme_install() -> list[list[str]]:
    """The `pip install` commands of README's quick-start line (install + run the main job)."""
    blocks = code_blocks(readme_section("Quick start (fresh machine)"))
    installs = pip_installs(blocks[0])
    assert installs, "README's quick start has no pip install"
    return installs


def torch_run(instructions: list[Instruction]) -> str:
    (run,) = [r for r in runs(instructions) if "torch==" in r]
    return run


def execute_torch_run(instructions, tmp_path: Path, **args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the PyTorch RUN line in the Dockerfile's SHELL with the ARG values, `pip` and `python` stubbed.

    Returns the process and the argv `pip` received (empty when it was not called).
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("pip", 'printf "%s\\n" "$@" > "$PIP_ARGS"'), ("python", "exit 0")):
        stub = bin_dir / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    env = {**arg_defaults(instructions), **args, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PIP_ARGS": str(tmp_path / "pip-args")}
    shell = shell_of(instructions)
    proc = subprocess.run([*shell, torch_run(instructions)], env=env, capture_output=True, text=True, timeout=30)
    pip_args = (tmp_path / "pip-args").read_text().splitlines() if (tmp_path / "pip-args").exists() else []
    return proc, pip_args


def shell_of(instructions: list[Instruction]) -> list[str]:
    shells = [shlex.split(i.args.replace("[", "").replace("]", "").replace(",", " ")) for i in instructions
              if i.keyword == "SHELL"]
    return shells[-1] if shells else ["/bin/sh", "-c"]


def test_base_image_user_and_no_healthcheck(instructions):
    keywords = [i.keyword for i in instructions]
    assert keywords.count("FROM") == 1
    defaults = arg_defaults(instructions)
    base = next(i.args for i in instructions if i.keyword == "FROM").replace("${PYTHON_VERSION}", defaults["PYTHON_VERSION"])
    assert base.startswith("python:3.11-")
    # the image's Python is the one the project is tested on here, and >= 3.11 (tomllib in the deps layer)
    assert defaults["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    users = [i.args for i in instructions if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert keywords.index("USER") > max(k for k, i in enumerate(instructions) if i.keyword == "RUN"), \
        "every RUN (installs) comes before switching to the non-root user"
    assert "HEALTHCHECK" not in keywords and "ENTRYPOINT" not in keywords
    assert shlex.split(next(i.args for i in instructions if i.keyword == "CMD").strip("[]").replace(",", " ")) == [
        "cre-pipeline", "--help"]


def test_user_owns_the_volume_paths(instructions):
    env = env_values(instructions)
    user_run = next(r for r in runs(instructions) if "useradd" in r)
    useradd = next(c for c in simple_commands(user_run) if c[0] == "useradd")
    uid = useradd[useradd.index("--uid") + 1]
    assert [i.args for i in instructions if i.keyword == "USER"][-1] == f"{uid}:{uid}"
    chown = next(c for c in simple_commands(user_run) if c[0] == "chown")
    for var in ("CRE_DATA_DIR", "CRE_ARTIFACTS"):
        assert env[var] in chown, f"{var}={env[var]} is not made writable for the non-root user"


def test_torch_install_matches_readme_by_default(instructions, tmp_path):
    """The default (CUDA) build runs README's `pip install torch==... torchvision==...` exactly."""
    proc, pip_args = execute_torch_run(instructions, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert pip_args == ["install", *readme_install()[0]]


def test_cpu_variant_only_changes_the_wheel_index(instructions, tmp_path):
    proc, pip_args = execute_torch_run(instructions, tmp_path, TORCH_VARIANT="cpu")
    assert proc.returncode == 0, proc.stderr
    assert pip_args == ["install", "--index-url", "https://download.pytorch.org/whl/cpu", *readme_install()[0]]


def test_explicit_index_for_an_older_cuda(instructions, tmp_path):
    proc, pip_args = execute_torch_run(instructions, tmp_path, TORCH_INDEX_URL="https://example.invalid/whl/cu126")
    assert proc.returncode == 0, proc.stderr
    assert pip_args == ["install", "--index-url", "https://example.invalid/whl/cu126", *readme_install()[0]]


def test_unknown_variant_is_refused(instructions, tmp_path):
    proc, pip_args = execute_torch_run(instructions, tmp_path, TORCH_VARIANT="rocm")
    assert proc.returncode != 0 and pip_args == []
    assert proc.stderr.strip() == "TORCH_VARIANT must be cuda or cpu, got 'rocm'"


def test_package_install_matches_readme(instructions):
    """README's second command, `pip install -e .`, verbatim; nothing else installed but pyproject's deps and ray[default]."""
    readme = readme_install()
    assert len(readme) == 2 and readme[1] == ["-e", "."]
    installs = [args for run in runs(instructions) if "torch==" not in run for args in pip_installs(run)]
    assert ["-e", "."] in installs
    extra = [a for args in installs if args != ["-e", "."] for a in args]
    assert extra == ["-r", "/tmp/requirements.txt", "ray[default]"], extra
    # the editable install comes after the source is copied, the deps layer after pyproject.toml only
    order = [(i.keyword, i.args) for i in instructions if i.keyword in ("COPY", "RUN")]
    copy_all = order.index(("COPY", ". ."))
    assert any("pip install -e ." in args for kw, args in order[copy_all:] if kw == "RUN")
    assert order[copy_all - 2] == ("COPY", "pyproject.toml ./")


def test_deps_layer_installs_exactly_pyprojects_dependencies(instructions, tmp_path):
    """The one-liner that writes /tmp/requirements.txt yields pyproject's dependency list (run here, in a copy)."""
    run = next(r for r in runs(instructions) if "tomllib" in r)
    python_cmd = next(c for c in simple_commands(run.split(">", 1)[0]) if c[0] == "python")
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    out = subprocess.run([sys.executable, *python_cmd[1:]], cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=30).stdout.split("\n")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [line for line in out if line] == deps
    assert any(d.startswith("ray[tune]") for d in deps)


def test_torch_pins_are_build_args_equal_to_readme(instructions):
    defaults = arg_defaults(instructions)
    pins = dict(req.split("==") for req in readme_install()[0])
    assert defaults["TORCH_VERSION"] == pins["torch"] and defaults["TORCHVISION_VERSION"] == pins["torchvision"]
    assert defaults["TORCH_VARIANT"] == "cuda"


def test_environment_of_the_image(instructions):
    env = env_values(instructions)
    assert env["CRE_DATA_DIR"] == "/data" and env["CRE_ARTIFACTS"] == "/artifacts"
    assert "CRE_STORE" not in env, "the store URL (with its password) belongs to the deployment"
    assert any("ray --version" in r for r in runs(instructions)), "ray on PATH"
    assert any("cre-pipeline --version" in r for r in runs(instructions)), "cre-pipeline on PATH"


def test_every_run_line_is_valid_shell(instructions):
    shell = shell_of(instructions)
    assert shell[0] == "/bin/bash" and "pipefail" in shell
    for run in runs(instructions):
        proc = subprocess.run(["bash", "-n", "-c", run], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"{run}\n{proc.stderr}"


def test_dockerignore_keeps_what_the_build_needs():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.lstrip("*/")) or path.startswith(p + "/")
                   for p in patterns)

    for needed in ("pyproject.toml", "README.md", "grids/paper.yaml", "grids/quickstart.yaml", "cre/__init__.py",
                   "db/__init__.py", "pipeline/cli.py", "analysis", "docker/Dockerfile"):
        assert not ignored(needed), needed
    for heavy in (".git", "cre-results", "data", ".venv", "cre/__pycache__"):
        assert ignored(heavy), heavy
    assert ignored("docker/.env") and ignored(".env"), "compose's .env (passwords, tokens) must not enter the image"
