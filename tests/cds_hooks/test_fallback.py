"""The FHIR fallback within its budget (issue 14, item 1): missing keys fetched concurrently,
required first, best-effort ones given up when the budget is spent (and said so); the
fhirAuthorization's expires_in, patient and scope checked before the token is used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cds_hooks.cds_rules import assert_conformant_response, careplan_keys
from tests.cds_hooks.conftest import hook_request, prefetch_of, vignette_today
from tests.servers import demo_service, fhir_stub_command, free_port, uvicorn_server


def _stub(stub_data: list[Path], folder: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    full = {"FHIR_STUB_DATA": ":".join(str(p) for p in stub_data), **env}
    with uvicorn_server(fhir_stub_command(port), port, folder / "stub.txt", full) as base:
        yield base + "/fhir"


@pytest.fixture(scope="module")
def far(stub_data: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A FHIR server 400 ms away: seven queries one after another would miss the 2 s deadline."""
    yield from _stub(stub_data, tmp_path_factory.mktemp("far"), {"FHIR_STUB_LATENCY_MS": "400"})


@pytest.fixture(scope="module")
def slow_plans(stub_data: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A FHIR server whose CarePlan search takes 3 s (past the best-effort budget)."""
    yield from _stub(stub_data, tmp_path_factory.mktemp("slow-plans"), {"FHIR_STUB_SLOW_TYPES": "CarePlan"})


@pytest.fixture(scope="module")
def served(
    far: str, slow_plans: str, fhir_stub: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {"OI_CDS_FHIR_ALLOWLIST": ",".join((far, slow_plans, fhir_stub)), "OI_CDS_FHIR_TIMEOUT_S": "5"}
    with demo_service(tmp_path_factory.mktemp("fallback"), env) as base:
        yield base


def _bodies(vid: str, server: str, **auth: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    bundle, _, _ = vignette_today(vid)
    pid = bundle["entry"][0]["resource"]["id"]
    extra: dict[str, Any] = {"fhirServer": server}
    if auth:
        extra["fhirAuthorization"] = {
            "access_token": "t0k3n",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "oi-cds",
            **auth,
        }
    return hook_request("patient-view", pid, prefetch_of(bundle, pid)), hook_request(
        "patient-view", pid, None, **extra
    )


def _post(base: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base}/cds-services/oi-management", json=body, timeout=30)


@pytest.mark.parametrize("vid", ["s04", "s09", "s16"])
def test_a_far_server_answers_within_the_deadline_with_the_prefetch_cards(
    vid: str, served: str, far: str
) -> None:
    with_prefetch, without = _bodies(vid, far)
    first, second = _post(served, with_prefetch), _post(served, without)
    assert second.status_code == 200, second.text  # one after another, this was a 412
    assert_conformant_response(second.json())
    assert careplan_keys(second.json()) == careplan_keys(first.json())


def test_a_best_effort_key_past_the_budget_is_given_up_and_said(served: str, slow_plans: str) -> None:
    with_prefetch, without = _bodies("s04", slow_plans)
    response = _post(served, without)
    assert response.status_code == 200, response.text
    summary = response.json()["cards"][0]
    assert "care plans on file: not obtained from the FHIR server in time" in summary["detail"]
    assert careplan_keys(response.json()) == careplan_keys(_post(served, with_prefetch).json())


def _seen(fhir_stub: str) -> list[str]:
    return [str(s["path"]) for s in httpx.get(fhir_stub.removesuffix("/fhir") + "/_seen").json()]


@pytest.mark.parametrize(
    ("auth", "words"),
    [
        ({"expires_in": 0}, "the FHIR access token has expired"),
        ({"patient": "someone-else"}, "the FHIR access token is for another patient"),
    ],
)
def test_a_token_that_must_not_be_used_is_not_sent(
    auth: dict[str, Any], words: str, served: str, fhir_stub: str
) -> None:
    _, without = _bodies("s04", fhir_stub, **auth)
    before = len(_seen(fhir_stub))
    response = _post(served, without)
    assert response.status_code == 412
    assert words in response.json()["issue"][0]["diagnostics"]
    assert len(_seen(fhir_stub)) == before


@pytest.mark.parametrize(
    ("scope", "status", "out_of_scope"),
    [
        ("patient/*.read", 200, None),
        ("patient/*.rs", 200, None),
        (
            "openid fhirUser patient/Patient.read patient/Condition.read patient/MedicationRequest.read",
            412,
            "observations",
        ),
        ("patient/*.r", 412, "conditions"),  # SMART v2: r reads by id, s searches
    ],
)
def test_a_query_the_scope_does_not_allow_is_not_sent(
    scope: str, status: int, out_of_scope: str | None, served: str, fhir_stub: str
) -> None:
    _, without = _bodies("s04", fhir_stub, scope=scope)
    before = len(_seen(fhir_stub))
    response = _post(served, without)
    assert response.status_code == status, response.text
    if out_of_scope is not None:
        assert (
            f"{out_of_scope}: outside the access token's scope" in response.json()["issue"][0]["diagnostics"]
        )
        sent = _seen(fhir_stub)[before:]
        resource = {"observations": "Observation", "conditions": "Condition"}[out_of_scope]
        assert not any(path.startswith(f"/fhir/{resource}") for path in sent)
