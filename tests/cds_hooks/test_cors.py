"""CORS (C1, C2): preflight without a token, headers on every response including errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servers import free_port, service_command, uvicorn_server

ROUTES = ["/cds-services", "/cds-services/oi-management", "/cds-services/oi-management/feedback"]
SANDBOX = "http://localhost:8080"


@pytest.mark.parametrize("route", ROUTES)
def test_preflight_in_demo_mode(service: str, route: str) -> None:
    response = httpx.options(
        service + route,
        headers={
            "Origin": SANDBOX,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,accept",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", SANDBOX)
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "accept"):
        assert header in allowed
    assert "POST" in response.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    ("method", "route", "status"),
    [
        ("GET", "/cds-services", 200),
        ("POST", "/cds-services/oi-management", 412),
        ("POST", "/cds-services/oi-management", 400),
        ("POST", "/cds-services/nope", 404),
    ],
)
def test_cors_headers_on_every_response(service: str, method: str, route: str, status: int) -> None:
    body = (
        {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"}} if status == 412 else {}
    )
    response = httpx.request(
        method, service + route, json=body if method == "POST" else None, headers={"Origin": SANDBOX}
    )
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] in ("*", SANDBOX)


@pytest.fixture(scope="module")
def strict_cors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("cors")
    port = free_port()
    env = {
        "OI_CDS_DEMO": "false",
        "OI_CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "OI_CDS_CORS_ORIGINS": "https://ehr.example.org",
        "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
    }
    with uvicorn_server(service_command(port), port, folder / "log.txt", env) as base:
        yield base


def test_configured_origins_only_outside_demo(strict_cors: str) -> None:
    good = httpx.get(strict_cors + "/cds-services", headers={"Origin": "https://ehr.example.org"})
    assert good.headers["access-control-allow-origin"] == "https://ehr.example.org"
    bad = httpx.get(strict_cors + "/cds-services", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in bad.headers


def test_demo_fhir_is_off_outside_demo_mode(strict_cors: str) -> None:
    assert httpx.get(strict_cors + "/demo-fhir/Patient").status_code == 404
