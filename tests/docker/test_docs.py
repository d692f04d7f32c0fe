"""The cluster documentation against the code: commands that parse, variables that exist."""

from __future__ import annotations

import re

import pytest

from docker_parse import ROOT, code_blocks, cre_pipeline_commands, package_envvars, parse_cli, readme_section

SOURCES = {
    "README.md 'Running on a cluster'": lambda: "\n".join(code_blocks(readme_section("Running on a cluster")))
    + "\n" + "\n".join(re.findall(r"`([^`]*cre-pipeline [^`]*)`", readme_section("Running on a cluster"))),
    "docker/compose.yaml": lambda: (ROOT / "docker" / "compose.yaml").read_text(),
    "docker/compose.cpu.yaml": lambda: (ROOT / "docker" / "compose.cpu.yaml").read_text(),
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_documented_commands_parse(source):
    """Every written-out `cre-pipeline ...` parses with the real CLI (options, values, choices); its grid exists."""
    commands = cre_pipeline_commands(SOURCES[source]())
    assert commands, f"no cre-pipeline command found in {source}"
    for argv in commands:
        ctx = parse_cli(argv)
        grid = ctx.params.get("grid_path")
        if grid:
            assert (ROOT / grid).is_file(), f"{source}: {grid} does not exist"


def test_the_paper_launch_is_documented_where_the_issue_asks():
    paper = ["launch", "--grid", "grids/paper.yaml", "--address", "auto", "--gpus-per-trial", "0.25"]
    assert paper in cre_pipeline_commands(SOURCES["docker/compose.yaml"]())
    assert paper in cre_pipeline_commands(SOURCES["README.md 'Running on a cluster'"]())


def test_readme_names_exactly_the_variables_the_code_reads():
    section = readme_section("Running on a cluster")
    named = set(re.findall(r"\bCRE_[A-Z0-9_]+\b", section))
    smoke = {n for n in named if n.startswith("CRE_SMOKE_")}  # docker/smoke.sh's own settings
    assert all(n in (ROOT / "docker" / "smoke.sh").read_text() for n in smoke)
    named -= smoke
    read = set(package_envvars())
    assert named == read, f"README names {sorted(named - read)} the code does not read; misses {sorted(read - named)}"


def test_readme_covers_resume_and_progress():
    section = readme_section("Running on a cluster")
    commands = cre_pipeline_commands(SOURCES["README.md 'Running on a cluster'"]())
    assert any(c[0] == "resume" for c in commands)
    assert ["resume", "--include-failed"] in commands
    assert ["status", "--watch"] in commands
    for needle in ("--max-failures", "--stale-after", "--checkpoint-interval", "8265", "KubeRay", "ray up", "NFS",
                   "s3fs"):
        assert needle in section, needle
