"""docker-compose.yml and the Dockerfile: valid for Compose, and shaped as the README promises.

Validated by `docker compose config` where the plugin exists, else by Debian's `docker-compose`
(.ci/run installs it when neither is there); neither needs a running Docker engine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ugc.config import DEFAULT_STOP_GRACE

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-password-for-the-test",
    "UGC_SECRET_KEY": "k" * 48,
    "UGC_AUDIT_KEY": "a" * 48,
    "UGC_DATA_KEY": "d" * 48,
}


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)")
    clean = {key: value for key, value in os.environ.items() if key not in SECRETS and not key.startswith("UGC_")}
    return subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_validates_the_file_when_its_secrets_are_given() -> None:
    done = compose_config(SECRETS)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_render_without_a_secret(missing: str) -> None:
    done = compose_config({key: value for key, value in SECRETS.items() if key != missing})
    assert done.returncode != 0 and missing in done.stderr, done.stderr


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return found


def test_two_api_replicas_run_in_production_behind_one_port(services: dict[str, Any]) -> None:
    apis = [name for name, service in services.items() if service.get("command", [])[:2] == ["ugc", "serve"]]
    assert len(apis) == 2
    for name in apis:
        env = services[name]["environment"]
        assert env["UGC_ENV"] == "production"
        assert env["UGC_DATABASE_URL"].startswith("postgresql://") and env["UGC_REDIS_URL"].startswith("redis://")
        assert env["UGC_SECRET_KEY"].startswith("${UGC_SECRET_KEY:?")  # from the environment, never a default
        assert env["UGC_AUDIT_KEY"].startswith("${UGC_AUDIT_KEY:?")
        assert env["UGC_DATA_KEY"].startswith("${UGC_DATA_KEY:?")
        assert env["UGC_PROJECTIONS"] == "external"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert any(volume.startswith("media:") for volume in services[name]["volumes"])
    published = [name for name, service in services.items() if service.get("ports")]
    assert published == ["proxy"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert all(f"server {name}:8000" in nginx for name in apis)


def test_the_public_port_can_keep_metrics_to_those_given_a_token(services: dict[str, Any]) -> None:
    """nginx passes /metrics on like any path, and the README has UGC_METRICS_TOKEN set wherever the
    API is public: the file passed no such variable on, so its /metrics was open to anyone."""
    apis = [service for service in services.values() if service.get("command", [])[:2] == ["ugc", "serve"]]
    assert apis and all(api["environment"]["UGC_METRICS_TOKEN"] == "${UGC_METRICS_TOKEN:-}" for api in apis)


def test_the_waits_the_readme_has_tuned_reach_the_services(services: dict[str, Any]) -> None:
    """README has UGC_READ_YOUR_WRITES_TIMEOUT raised for two projectors' takeovers and UGC_STOP_GRACE
    set under an orchestrator's stop timeout: the file passed neither on, so neither could be set."""
    apis = [service for service in services.values() if service.get("command", [])[:2] == ["ugc", "serve"]]
    for name in ("UGC_READ_YOUR_WRITES_TIMEOUT", "UGC_STOP_GRACE"):
        assert apis and all(api["environment"][name] == f"${{{name}:-}}" for api in apis), name


def test_two_projection_workers_and_the_backing_services(services: dict[str, Any]) -> None:
    workers = [name for name, service in services.items() if service.get("command") == ["ugc", "project"]]
    assert len(workers) == 2
    assert all(any(volume.startswith("audit:") for volume in services[name]["volumes"]) for name in workers)
    assert {"postgres", "redis"} <= set(services)
    assert any(volume.startswith("pgdata:") for volume in services["postgres"]["volumes"])


def test_the_image_installs_the_pinned_versions_and_serves_the_api() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--constraint constraints.txt" in dockerfile
    assert '"ugc", "serve"' in dockerfile and "/readyz" in dockerfile


def test_every_volume_of_ours_is_made_in_the_image_for_its_user(services: dict[str, Any]) -> None:
    """A named volume first mounted on a directory the image lacks is made by Docker, owned by root:
    the projectors (user ugc) could write no checkpoint into a fresh `audit` volume."""
    ours = [service for service in services.values() if service.get("image") == "ugc-market:latest"]
    mounted = {volume.split(":")[1] for service in ours for volume in service.get("volumes", [])}
    made = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if "mkdir -p" in line)
    assert mounted and all(path in made.split() for path in mounted), (mounted, made)
    assert "chown -R ugc /data" in made


def test_one_service_can_take_and_restore_backups(services: dict[str, Any]) -> None:
    """`ugc backup` runs `pg_dump`, which refuses a server of a newer major version than its own
    (Debian's, in the image's base, were 15 against the service's 16), and copies the uploads and
    the audit directory beside the dump: no service mounted both, so no container could take one."""
    major = services["postgres"]["image"].split(":")[1].split("-")[0]
    assert f"postgresql-client-{major}" in (ROOT / "Dockerfile").read_text()
    ours = {name: service for name, service in services.items() if service.get("image") == "ugc-market:latest"}
    mounts = {name: {volume.split(":")[1] for volume in service.get("volumes", [])} for name, service in ours.items()}
    able = [name for name, mounted in mounts.items() if {"/data/media", "/data/audit", "/backups"} <= mounted]
    assert able == ["ops"], mounts
    assert services["ops"]["profiles"] == ["ops"]  # run on demand, never started by `up`


def test_docker_lets_the_api_drain_before_it_kills(services: dict[str, Any]) -> None:
    """`docker stop` (and a `compose up` that replaces a container) sends SIGKILL 10 s after SIGTERM
    unless the service says otherwise. `ugc serve` lets the requests under way finish for up to
    UGC_STOP_GRACE (30 s by default), answers what is left 503, then stops: killed at 10 s, an upload
    or a command still under way was cut with a reset, and the lifespan closed nothing."""
    apis = [service for service in services.values() if service.get("command", [])[:2] == ["ugc", "serve"]]
    assert apis
    for service in apis:
        given = str(service.get("environment", {}).get("UGC_STOP_GRACE") or "")
        drain = int(re.sub(r"^\$\{UGC_STOP_GRACE:-(\d*)\}$", r"\1", given) or DEFAULT_STOP_GRACE)  # its default
        grace = re.fullmatch(r"(\d+)s", str(service.get("stop_grace_period", "10s")))
        assert grace is not None and int(grace.group(1)) >= drain + 10, service.get("stop_grace_period")


def test_every_service_keeps_a_bounded_log(services: dict[str, Any]) -> None:
    """Docker's default `json-file` driver keeps all a container ever wrote: a JSON line per request
    (nginx's access log, the API's) grows for as long as the container lives, until the disk fills."""
    for name, service in services.items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert logging.get("options", {}).get("max-size") and logging["options"].get("max-file"), name
