"""The Dockerfile and docker-compose.yml, checked statically: there is no Docker engine on the
project's machines, so the images are not built here (README says so)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from services.cds_hooks.config import Settings

ROOT = Path(__file__).parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def test_dockerfile_slim_non_root_healthcheck_no_build_tools() -> None:
    final = _final_stage()
    assert final.startswith("python:3.11-slim")
    user = re.search(r"^USER (\S+)", final, re.MULTILINE)
    assert user is not None
    assert user.group(1) not in ("root", "0")
    assert "HEALTHCHECK" in final
    assert "/healthz" in final
    assert "build-essential" not in final
    assert "gcc" not in final
    assert "EXPOSE 8000" in final
    assert "oi-cds serve" in final
    assert "${WEB_CONCURRENCY}" in final  # workers configurable


def test_compose_services_and_order() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "migrate", "cds-1", "cds-2", "lb"}
    assert services["migrate"]["command"] == ["oi-cds", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for replica in ("cds-1", "cds-2"):
        depends = services[replica]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
        assert "healthcheck" in services[replica]
        assert "/keys:ro" in services[replica]["volumes"][0]
    assert services["lb"]["ports"] == ["8080:8080"]
    assert {k: v["condition"] for k, v in services["lb"]["depends_on"].items()} == {
        "cds-1": "service_healthy",
        "cds-2": "service_healthy",
    }
    for name in ("postgres", "redis", "lb"):
        assert "healthcheck" in services[name]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_compose_environment_matches_settings() -> None:
    env = COMPOSE["services"]["cds-1"]["environment"]
    fields = set(Settings.model_fields)
    for name in env:
        if name.startswith("OI_CDS_"):
            assert name.removeprefix("OI_CDS_").lower() in fields, name
    assert env["OI_CDS_AUTH_MODE"] == "required"
    assert env["OI_CDS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["OI_CDS_REDIS_URL"].startswith("redis://")
    settings = Settings(
        **{
            k.removeprefix("OI_CDS_").lower(): v
            for k, v in env.items()
            if k.startswith("OI_CDS_") and k != "OI_CDS_TRUSTED_ISSUERS"
        }
    )
    assert settings.auth_required
    issuers = Settings.model_validate({"trusted_issuers": json.loads(env["OI_CDS_TRUSTED_ISSUERS"])})
    assert issuers.trusted_issuers  # the dev issuer's key set is the mounted file


def test_load_balancer_spreads_over_both_replicas() -> None:
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server cds-1:8000" in nginx
    assert "server cds-2:8000" in nginx
    assert "listen 8080" in nginx
