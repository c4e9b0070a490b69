"""The shared vignettes as real hook requests (dates moved so that today is the evaluation day)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cds_hooks.cds_rules import assert_conformant_response, careplan_keys, keys_of
from tests.cds_hooks.conftest import hook_request, prefetch_of, vignette_today
from tests.conftest import load_vignettes

VIGNETTES = load_vignettes()
SERVICE_OF = {
    "patient-view": "oi-management",
    "order-select": "oi-order-select",
    "order-sign": "oi-order-sign",
}


def _request(
    vid: str, *, with_prefetch: bool, fhir_server: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    bundle, drafts, vignette = vignette_today(vid)
    patient_id = bundle["entry"][0]["resource"]["id"]
    prefetch = prefetch_of(bundle, patient_id) if with_prefetch else None
    selections = None
    if vignette.get("selections") is not None:
        selections = [f"{drafts[i]['resourceType']}/{drafts[i]['id']}" for i in vignette["selections"]]
    extra = {"fhirServer": fhir_server} if fhir_server else {}
    body = hook_request(vignette["hook"], patient_id, prefetch, drafts=drafts, selections=selections, **extra)
    return body, vignette


def _keys(body: dict[str, Any], hook: str) -> set[str]:
    return careplan_keys(body) if hook == "patient-view" else keys_of(body)


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_vignette_over_http(vignette: dict[str, Any], service: str) -> None:
    request, v = _request(vignette["id"], with_prefetch=True)
    response = httpx.post(f"{service}/cds-services/{SERVICE_OF[v['hook']]}", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_conformant_response(body)
    keys = _keys(body, v["hook"])
    assert set(v["expected_keys"]) <= keys, v["note"]
    assert not set(v["expected_absent"]) & keys
    if not v["expected_keys"]:
        assert body == {"cards": []}  # S2
    if v.get("expects_bisphosphonate_suggestion"):
        labels = [s["label"] for c in body["cards"] for s in c.get("suggestions", [])]
        assert any("pamidronate" in label for label in labels)
        assert not any(
            a["type"] == "delete"
            for c in body["cards"]
            for s in c.get("suggestions", [])
            for a in s["actions"]
        )


@pytest.mark.parametrize("vid", ["s04", "s09", "s16", "s19", "s22"])
def test_fhir_fallback_gives_the_same_keys(vid: str, service: str, fhir_stub: str) -> None:
    """No prefetch at all: everything comes from the allow-listed FHIR server (paged search)."""
    with_prefetch, v = _request(vid, with_prefetch=True)
    without, _ = _request(vid, with_prefetch=False, fhir_server=fhir_stub)
    url = f"{service}/cds-services/{SERVICE_OF[v['hook']]}"
    first, second = httpx.post(url, json=with_prefetch), httpx.post(url, json=without)
    assert first.status_code == second.status_code == 200, second.text
    assert _keys(first.json(), v["hook"]) == _keys(second.json(), v["hook"])
    assert_conformant_response(second.json())
