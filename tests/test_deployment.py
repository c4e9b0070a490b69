"""What the running compose test (tests/test_compose.py) cannot see: the defaults a site with
registry access gets (public images, PyPI), and the environment's names against `Settings`."""

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


def test_dockerfile_defaults_to_the_public_slim_python_and_pypi() -> None:
    assert "ARG BASE_IMAGE=python:3.11-slim" in DOCKERFILE
    assert "ARG WHEELS=pypi" in DOCKERFILE
    final = _final_stage()
    assert final.startswith("${BASE_IMAGE}")
    assert "build-essential" not in DOCKERFILE
    assert "gcc" not in DOCKERFILE
    assert "/wheelhouse" not in final  # the wheels stay in the install stage
    assert "${WEB_CONCURRENCY}" in final  # workers configurable


def _image_default(reference: str) -> str:
    match = re.fullmatch(r"\$\{(\w+):-([^}]+)\}", reference)
    assert match is not None, reference
    return match.group(2)


def test_compose_defaults_to_todays_public_images() -> None:
    services = COMPOSE["services"]
    defaults = {name: _image_default(services[name]["image"]) for name in ("postgres", "redis", "lb")}
    assert defaults == {
        "postgres": "postgres:16-alpine",
        "redis": "redis:7-alpine",
        "lb": "nginx:1.27-alpine",
    }
    for name in ("migrate", "cds-1", "cds-2"):
        args = services[name]["build"]["args"]
        assert _image_default(args["BASE_IMAGE"]) == "python:3.11-slim"
        assert _image_default(args["WHEELS"]) == "pypi"


def test_compose_environment_matches_settings() -> None:
    env = COMPOSE["services"]["cds-1"]["environment"]
    fields = set(Settings.model_fields)
    for name in env:
        if name.startswith("OI_CDS_"):
            assert name.removeprefix("OI_CDS_").lower() in fields, name
    env = {k: v for k, v in env.items() if "${" not in v}  # set per site (the public base URL)
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
