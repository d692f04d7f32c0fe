"""docker/compose.yaml, read as Compose would read it: services, wiring, volumes, GPUs, the CLI's variables."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess

import pytest
from sqlalchemy.engine import make_url

from db.urls import parse_store_url
from docker_parse import (
    ROOT,
    Tagged,
    arg_defaults,
    cli_envvars,
    dockerfile_instructions,
    env_values,
    environment,
    interpolate,
    load_compose,
    merge_compose,
    package_envvars,
    volume_mounts,
)

SERVICES = {"postgres", "ray-head", "ray-worker"}
NODES = ("ray-head", "ray-worker")


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    """The file as Compose resolves it with no variables set (every default taken)."""
    return interpolate(raw, {})


def command_line(service: dict) -> str:
    cmd = service["command"]
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def test_services_and_volumes(compose):
    assert set(compose["services"]) == SERVICES
    declared = set(compose["volumes"])
    assert {"pgdata", "artifacts", "data"} <= declared
    for name, svc in compose["services"].items():
        for target, source in volume_mounts(svc).items():
            assert source in declared, f"{name} mounts {source!r} at {target}: not a named volume of the file"


def test_postgres_volume_and_healthcheck(compose):
    pg = compose["services"]["postgres"]
    assert pg["image"].startswith("postgres:")
    assert volume_mounts(pg) == {"/var/lib/postgresql/data": "pgdata"}
    check = pg["healthcheck"]["test"]
    assert check[0] in ("CMD", "CMD-SHELL") and "pg_isready" in " ".join(check)
    user, db = pg["environment"]["POSTGRES_USER"], pg["environment"]["POSTGRES_DB"]
    assert f"-U {user}" in " ".join(check) and f"-d {db}" in " ".join(check)
    assert "ports" not in pg, "the store is reached on the compose network, not published on the host"


def test_ray_head_ports_command_and_healthcheck(compose):
    head = compose["services"]["ray-head"]
    argv = shlex.split(command_line(head))
    assert argv[:2] == ["ray", "start"]
    assert {"--head", "--block", "--port=6379", "--dashboard-port=8265", "--dashboard-host=0.0.0.0"} <= set(argv)
    # the head only schedules: the workers own CPUs and GPUs, nothing is counted twice
    assert {"--num-cpus=0", "--num-gpus=0"} <= set(argv)
    assert "6379" in [str(p) for p in head["expose"]]
    assert head["ports"] == ["127.0.0.1:8265:8265"], "the dashboard has no login: localhost only"
    assert "ray" in head["healthcheck"]["test"] and "status" in head["healthcheck"]["test"]
    assert head["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert head["init"] is True and head["hostname"] == "ray-head"


def test_dashboard_port_variable(raw):
    ports = lambda env: interpolate(raw, env)["services"]["ray-head"]["ports"]  # noqa: E731
    assert ports({"RAY_DASHBOARD_PORT": "9000"}) == ["127.0.0.1:9000:8265"]
    assert ports({"RAY_DASHBOARD_PORT": ""}) == ["127.0.0.1::8265"]  # any free port (smoke.sh)


def test_ray_worker_scales_and_reserves_gpus(compose):
    worker = compose["services"]["ray-worker"]
    # `--scale ray-worker=N` needs replicas that differ: no fixed name, hostname or host port
    assert not {"container_name", "hostname", "ports"} & set(worker)
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "deploy" not in compose["services"]["ray-head"]


def test_worker_joins_the_heads_gcs_port(compose):
    head = shlex.split(command_line(compose["services"]["ray-head"]))
    port = next(a.split("=", 1)[1] for a in head if a.startswith("--port="))
    hostname = compose["services"]["ray-head"]["hostname"]
    assert f"--address={hostname}:{port}" in command_line(compose["services"]["ray-worker"])


@pytest.mark.parametrize("cpus, gpus, expected", [
    ("", "", []),
    ("4", "", ["--num-cpus=4"]),
    ("2", "1", ["--num-cpus=2", "--num-gpus=1"]),
])
def test_worker_command_runs_in_a_shell(compose, tmp_path, cpus, gpus, expected):
    """The worker's bash -c line (after Compose turned `$$` into `$`) passes only the limits that are set."""
    cmd = compose["services"]["ray-worker"]["command"]
    assert cmd[:2] == ["bash", "-c"]
    stub = tmp_path / "ray"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RAY_ARGS"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "RAY_ARGS": str(tmp_path / "args"),
           "RAY_NUM_CPUS": cpus, "RAY_NUM_GPUS": gpus}
    subprocess.run(cmd, env=env, check=True, timeout=30)
    args = (tmp_path / "args").read_text().split()
    assert args == ["start", "--address=ray-head:6379", "--block", *expected]


def test_worker_limits_come_from_the_host_environment(raw):
    env = environment(interpolate(raw, {"RAY_WORKER_CPUS": "3", "RAY_WORKER_GPUS": "1"})["services"]["ray-worker"])
    assert env["RAY_NUM_CPUS"] == "3" and env["RAY_NUM_GPUS"] == "1"


def test_shared_artifact_and_data_volumes_wired_to_the_cli(compose):
    """Same volume at the same path on every node, and that path is what CRE_ARTIFACTS / CRE_DATA_DIR say."""
    head, worker = (compose["services"][n] for n in NODES)
    for var, volume in (("CRE_ARTIFACTS", "artifacts"), ("CRE_DATA_DIR", "data")):
        path = environment(head)[var]
        assert environment(worker)[var] == path
        assert volume_mounts(head)[path] == volume_mounts(worker)[path] == volume
    # and the image's defaults agree, so `docker run -v ...` without compose behaves the same
    image_env = env_values(dockerfile_instructions((ROOT / "docker" / "Dockerfile").read_text()))
    assert image_env["CRE_DATA_DIR"] == environment(head)["CRE_DATA_DIR"]
    assert image_env["CRE_ARTIFACTS"] == environment(head)["CRE_ARTIFACTS"]


def test_store_url_points_at_the_postgres_service(raw):
    for env in ({}, {"POSTGRES_PASSWORD": "s3cret"}):
        compose = interpolate(raw, env)
        pg = compose["services"]["postgres"]["environment"]
        for node in NODES:
            url = parse_store_url(environment(compose["services"][node])["CRE_STORE"])  # the store's own check
            assert url.drivername == "postgresql+psycopg"
            assert (url.host, url.port or 5432) == ("postgres", 5432)
            assert (url.username, url.password, url.database) == (
                pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
        assert make_url(environment(compose["services"]["ray-head"])["CRE_STORE"]).password == (
            env.get("POSTGRES_PASSWORD", "cre"))


def test_compose_names_exactly_the_variables_the_code_reads(compose):
    """Both ways: every CRE_* the package reads is set on every node, and compose sets no other CRE_*."""
    read = package_envvars()
    assert {"CRE_STORE", "CRE_ARTIFACTS", "CRE_DATA_DIR"} <= set(read), read
    assert cli_envvars() <= set(read), "a click envvar the AST scan missed"
    for node in NODES:
        set_here = {k for k in environment(compose["services"][node]) if k.startswith("CRE_")}
        missing, unknown = set(read) - set_here, set_here - set(read)
        assert not missing, f"{node} does not set {sorted(missing)} (read in {[sorted(read[m]) for m in missing]})"
        assert not unknown, f"{node} sets {sorted(unknown)}, which no code reads"


def test_every_option_with_an_envvar_is_covered(compose):
    """The launcher's options that fall back to the environment get their value from compose on the head."""
    head_env = environment(compose["services"]["ray-head"])
    assert cli_envvars() and cli_envvars() <= set(head_env)


def test_image_and_build_shared_by_head_and_workers(compose):
    head, worker = (compose["services"][n] for n in NODES)
    assert head["image"] == worker["image"] == "cre-pipeline:cuda"
    assert head["build"] == worker["build"]
    build = head["build"]
    assert (ROOT / "docker" / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).is_file()
    assert build["args"]["TORCH_VARIANT"] == "cuda"
    assert set(build["args"]) <= set(arg_defaults(dockerfile_instructions((ROOT / build["dockerfile"]).read_text())))
    for svc in (head, worker):
        assert svc["shm_size"] == "2gb"  # Ray's object store; Docker's default /dev/shm is 64 MB


def test_cpu_override_drops_the_gpu_reservation(raw):
    override = load_compose("compose.cpu.yaml")
    assert override["services"]["ray-worker"]["deploy"] == Tagged("!reset", {})
    merged = interpolate(merge_compose(raw, override), {})
    for node in NODES:
        svc = merged["services"][node]
        assert svc["image"] == "cre-pipeline:cpu" and svc["build"]["args"]["TORCH_VARIANT"] == "cpu"
        assert svc["build"]["dockerfile"] == "docker/Dockerfile"  # merged, not replaced
        assert "deploy" not in svc
    assert merged["services"]["ray-worker"]["volumes"] == interpolate(raw, {})["services"]["ray-worker"]["volumes"]



def test_ray_auth_mode_is_the_same_on_every_node(raw):
    """A worker whose token-auth mode differs from the head's cannot join: one setting for all, token passed through."""
    for env, mode in (({}, "disabled"), ({"RAY_AUTH_MODE": "token"}, "token")):
        compose = interpolate(raw, env)
        for node in NODES:
            assert environment(compose["services"][node])["RAY_AUTH_MODE"] == mode
            assert compose["services"][node]["environment"]["RAY_AUTH_TOKEN"] is None  # from the shell/.env, if set
