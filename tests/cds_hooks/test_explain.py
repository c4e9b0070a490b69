"""Explain mode (issue 14, item 2): why each card did or did not fire, over the shared vignettes,
through a real uvicorn; allowed in demo mode and to trusted issuers only; never in the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cds_hooks.errors import Msg
from tests.cds_hooks.cds_rules import assert_conformant_response
from tests.cds_hooks.conftest import hook_request, prefetch_of, vignette_today
from tests.cds_hooks.test_active_orders import with_active_orders
from tests.cds_hooks.test_auth import B_KEY, ES, ISS_A, ISS_B
from tests.cds_hooks.test_vignettes_http import SERVICE_OF, _keys, _request
from tests.conftest import load_vignettes
from tests.servers import free_port, service_command, uvicorn_server

EXPLAIN = "org.example.oi-cds.explain"
VIGNETTES = load_vignettes()


def _explained(
    base: str, body: dict[str, Any], hook: str, **kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    kw.setdefault("params", {"explain": "true"})
    response = httpx.post(f"{base}/cds-services/{SERVICE_OF[hook]}", json=body, timeout=30, **kw)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_conformant_response(answer)  # the explanation too: no null or empty value anywhere
    return answer, answer["extension"][EXPLAIN]


def _rules(why: dict[str, Any]) -> dict[str, str]:
    return {r["key"]: r["outcome"] for r in why["rules"]}


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_the_explanation_agrees_with_the_cards(vignette: dict[str, Any], service: str) -> None:
    body, v = _request(vignette["id"], with_prefetch=True)
    plain = httpx.post(f"{service}/cds-services/{SERVICE_OF[v['hook']]}", json=body, timeout=30).json()
    answer, why = _explained(service, body, v["hook"])
    assert "extension" not in plain
    assert _keys(answer, v["hook"]) == _keys(plain, v["hook"])  # explaining changes no card
    assert [c["summary"] for c in answer["cards"]] == [c["summary"] for c in plain["cards"]]
    assert {d["key"]: d["source"] for d in why["data"]}["patient"] == "prefetch"
    assert "total" in why["timings"]
    outcomes = _rules(why)
    matched = [o.get("card") for o in why.get("orders", [])]
    for key in v["expected_keys"]:
        if v["hook"] == "patient-view":
            assert outcomes[key] == "true", (key, why)
        else:  # an order-time check: true for the draft order whose card it is
            assert key in matched, why.get("orders")
    for key in v["expected_absent"]:
        if v["hook"] == "patient-view" and key in outcomes:
            assert outcomes[key] != "true", key
        assert key not in matched
    if v["hook"] == "patient-view" and any(f["name"] == "oi" and f["value"] for f in why["facts"]):
        assert set(why.get("recommended", [])) == {k for k, o in outcomes.items() if o == "true"}
        for withheld in why.get("withheld", []):
            assert outcomes[withheld["key"]] == "undecided"
            assert withheld["unknown"]
    for order in why.get("orders", []):
        if order.get("card"):  # the card's check is true, and no check before it is
            first = [r["outcome"] for r in order["rules"]].index("true")
            assert order["rules"][first]["key"] == order["card"]


def test_an_undecided_rule_says_which_facts_are_unknown(service: str) -> None:
    vid = next(
        v["id"] for v in VIGNETTES if "missing-facts" in v["expected_keys"] and v["hook"] == "patient-view"
    )
    body, v = _request(vid, with_prefetch=True)
    _, why = _explained(service, body, v["hook"])
    undecided = [r for r in why["rules"] if r["outcome"] == "undecided"]
    assert undecided, "a record with a missing fact leaves some rule undecided"
    facts = {f["name"]: f for f in why["facts"]}
    for rule in undecided:
        assert rule["unknown"]
        assert rule["why"].startswith("not known: ")
        for ref in rule["unknown"]:
            assert facts[ref.removeprefix("%facts.")].get("unknown") is True


def test_facts_name_the_resources_they_came_from(service: str) -> None:
    bundle, _, _ = vignette_today("s04")
    pid = bundle["entry"][0]["resource"]["id"]
    ids = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    _, why = _explained(
        service,
        hook_request("patient-view", pid, prefetch_of(bundle, pid)),
        "patient-view",
        params={},
        headers={"X-OI-CDS-Explain": "true"},
    )
    sources = {ref for f in why["facts"] for ref in f.get("from", [])}
    assert sources
    assert sources <= ids
    oi = next(f for f in why["facts"] if f["name"] == "oi")
    assert oi["value"] is True
    assert oi["from"]
    assert oi["statement"]


def test_a_patient_without_oi_is_decided_without_the_rules(service: str) -> None:
    body = hook_request(
        "patient-view",
        "adult-1",
        {
            "patient": {"resourceType": "Patient", "id": "adult-1", "birthDate": "1970-01-01"},
            **dict.fromkeys(("conditions", "observations", "medications"), None),
        },
    )
    answer, why = _explained(service, body, "patient-view")
    assert answer["cards"] == []
    assert why["decided"].startswith("no OI Condition")
    assert set(_rules(why).values()) == {"not evaluated"}


def test_data_from_the_fhir_server_is_said_so(service: str, fhir_stub: str) -> None:
    body, v = _request("s04", with_prefetch=False, fhir_server=fhir_stub)
    _, why = _explained(service, body, v["hook"])
    sources = {d["key"]: d["source"] for d in why["data"]}
    assert sources["patient"] == sources["conditions"] == sources["observations"] == "fhirServer"


def test_active_orders_are_explained_in_patient_view(service: str) -> None:
    vignette = next(v for v in VIGNETTES if v["id"] == "s19")
    body, orders = with_active_orders("s19")
    _, why = _explained(service, body, "patient-view")
    assert {o["order"] for o in why["orders"]} == {f"{o['resourceType']}/{o['id']}" for o in orders}
    assert {o.get("card") for o in why["orders"]} & set(vignette["expected_keys"])


@pytest.fixture(scope="module")
def secured(fhir_stub: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Auth on; issuer A may ask for explanations, issuer B may call but not ask."""
    folder = tmp_path_factory.mktemp("explain-auth")
    (folder / "a.json").write_text(json.dumps({"keys": [ES.jwk()]}))
    (folder / "b.json").write_text(json.dumps({"keys": [B_KEY.jwk()]}))
    port = free_port()
    env = {
        "OI_CDS_AUTH_MODE": "required",
        "OI_CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "OI_CDS_TRUSTED_ISSUERS": json.dumps(
            {ISS_A: {"jwks_file": str(folder / "a.json")}, ISS_B: {"jwks_file": str(folder / "b.json")}}
        ),
        "OI_CDS_EXPLAIN_ISSUERS": ISS_A,
        "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
    }
    with uvicorn_server(service_command(port), port, folder / "log.txt", env) as base:
        yield base, folder / "log.txt"


def test_only_trusted_issuers_may_ask_and_the_log_holds_no_explanation(secured: tuple[str, Path]) -> None:
    base, log = secured
    body, _ = _request("s04", with_prefetch=True)
    url = f"{base}/cds-services/oi-management"
    patient = body["prefetch"]["patient"]

    def call(signer: Any, iss: str, explain: bool) -> httpx.Response:
        token = signer.token(url, iss)
        headers = {"Authorization": f"Bearer {token}"} | ({"X-OI-CDS-Explain": "true"} if explain else {})
        return httpx.post(url, json=body, headers=headers, timeout=30)

    trusted = call(ES, ISS_A, True)
    assert trusted.status_code == 200
    assert EXPLAIN in trusted.json()["extension"]
    refused = call(B_KEY, ISS_B, True)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == Msg.EXPLAIN_NOT_ALLOWED.value
    plain = call(B_KEY, ISS_B, False)
    assert plain.status_code == 200
    assert "extension" not in plain.json()
    text = log.read_text()
    assert patient["id"] not in text
    assert patient["birthDate"] not in text
    assert "%facts" not in text


def test_explain_is_refused_without_auth_outside_demo_mode(tmp_path: Path) -> None:
    port = free_port()
    env = {"OI_CDS_AUTH_MODE": "off", "OI_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    with uvicorn_server(service_command(port), port, tmp_path / "log.txt", env) as base:
        body, _ = _request("s04", with_prefetch=True)
        response = httpx.post(f"{base}/cds-services/oi-management?explain=true", json=body, timeout=30)
    assert response.status_code == 403, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
