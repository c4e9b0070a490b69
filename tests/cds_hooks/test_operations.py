"""Operating the service: OpenAPI examples, migrations on PostgreSQL, tokens kept out of logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of
from tests.servers import free_port, service_command, uvicorn_server

POSTGRES_ADMIN = os.environ.get("OI_CDS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def test_openapi_page_has_real_hook_examples(service: str) -> None:
    schema = httpx.get(service + "/openapi.json").json()
    body = schema["paths"]["/cds-services/{service_id}"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"patient-view", "order-select", "order-sign"}
    assert body["examples"]["patient-view"]["value"]["prefetch"]["patient"]["resourceType"] == "Patient"
    assert "HookRequest" in schema["components"]["schemas"]
    # every documented example is a request the service accepts
    for name, service_id in (
        ("patient-view", "oi-management"),
        ("order-select", "oi-order-select"),
        ("order-sign", "oi-order-sign"),
    ):
        response = httpx.post(f"{service}/cds-services/{service_id}", json=body["examples"][name]["value"])
        assert response.status_code == 200, name
    assert httpx.get(service + "/docs").status_code == 200


def test_access_token_never_reaches_the_logs(
    service: str, fhir_stub: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    token = "tok-" + uuid.uuid4().hex
    prefetch = prefetch_of(example_bundle(), "oi-type-iii-child")
    del prefetch["conditions"]
    body = hook_request(
        "patient-view",
        "status-500-x",
        {**prefetch, "patient": {**prefetch["patient"], "id": "status-500-x"}},
        fhirServer=fhir_stub,
        fhirAuthorization={
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "x",
            "subject": "y",
        },
    )
    response = httpx.post(service + "/cds-services/oi-management", json=body)
    assert response.status_code == 412
    assert token not in response.text
    logs = list(Path(str(tmp_path_factory.getbasetemp())).glob("service*/log.txt"))
    assert logs
    lines = []
    for log in logs:
        content = log.read_text()
        assert token not in content
        assert "Example" not in content  # no patient names
        assert "status-500-x" not in content  # no patient ids
        lines += [json.loads(line) for line in content.splitlines() if line.startswith("{")]
    mine = [
        entry
        for entry in lines
        if entry.get("hook_instance") == body["hookInstance"] and entry.get("status") == 412
    ]
    assert mine, "one structured line per request, with its hook instance"
    assert {"request_id", "method", "path", "status", "duration_ms"} <= set(mine[-1])
    assert response.headers["x-request-id"] in {entry["request_id"] for entry in mine}


def _postgres_available() -> bool:
    engine = create_engine(POSTGRES_ADMIN)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN} (set OI_CDS_TEST_POSTGRES)")
    name = "oi_cds_test_" + uuid.uuid4().hex[:8]
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_feedback_on_postgresql_after_oi_cds_migrate(postgres_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "OI_CDS_DATABASE_URL": postgres_url}
    server_env = {"OI_CDS_DATABASE_URL": postgres_url, "OI_CDS_AUTH_MODE": "off"}
    migrate_command = [sys.executable, "-m", "services.cli", "migrate"]
    port = free_port()
    # a shared database is not migrated by the service: readyz says so until `oi-cds migrate`
    with uvicorn_server(service_command(port), port, tmp_path / "log1.txt", server_env) as base:
        assert httpx.get(base + "/readyz").status_code == 503
    migrate = subprocess.run(migrate_command, env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr
    engine = create_engine(postgres_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"feedback", "alembic_version"} <= tables
    assert "issued_card" not in tables
    again = subprocess.run(migrate_command, env=env, capture_output=True, text=True)
    assert again.returncode == 0  # idempotent
    with uvicorn_server(service_command(port), port, tmp_path / "log2.txt", server_env) as base:
        assert httpx.get(base + "/readyz").json()["status"] == "ready"
        item = {
            "card": str(uuid.uuid4()),
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-25T10:00:00Z",
        }
        for _ in range(2):
            assert (
                httpx.post(
                    base + "/cds-services/oi-order-sign/feedback", json={"feedback": [item]}
                ).status_code
                == 200
            )
        assert httpx.get(base + "/admin/feedback").json()["total"] == 1


def test_metrics_count_requests_cards_and_412s_without_patient_data(service: str) -> None:
    body = hook_request(
        "patient-view", "oi-type-iii-child", prefetch_of(example_bundle(), "oi-type-iii-child")
    )
    assert httpx.post(service + "/cds-services/oi-management", json=body).status_code == 200
    assert (
        httpx.post(
            service + "/cds-services/oi-management", json=hook_request("patient-view", "p")
        ).status_code
        == 412
    )
    httpx.post(service + "/cds-services/no-such-service-" + uuid.uuid4().hex, json={})
    text = httpx.get(service + "/metrics").text
    assert 'oi_cds_requests_total{endpoint="hook",service="oi-management",status="200"}' in text
    assert 'oi_cds_requests_total{endpoint="hook",service="unknown",status="404"}' in text  # bounded labels
    assert 'oi_cds_cards_total{key="careplan-summary",service="oi-management"}' in text
    assert 'oi_cds_precondition_failed_total{reason="data-unavailable"}' in text
    assert "oi_cds_request_seconds_bucket" in text
    assert "oi-type-iii-child" not in text
    assert "Example" not in text
