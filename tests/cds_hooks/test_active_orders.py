"""Order review inside patient-view (issue 14, item 4): where an EHR fires only patient-view
(Oracle Health Millennium), the patient's active orders get the warning-level order checks."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cds_hooks.cds_rules import assert_conformant_response, careplan_keys
from tests.cds_hooks.conftest import hook_request, prefetch_of, vignette_today
from tests.conftest import load_vignettes
from tests.servers import demo_service

ORDER_VIGNETTES = [v for v in load_vignettes() if v["hook"] != "patient-view"]
# the contract's order-time table: these keys are warnings; the rod mismatch is a warning for a
# drafted telescoping rod (skeletally mature) and info for a non-telescoping one
WARNING_KEYS = {"order-not-approved", "order-investigational"}
ACTIVE = "OI: active order: "


def _drafts_of(vignette: dict[str, Any]) -> list[dict[str, Any]]:
    return vignette.get("draft_orders") or ([vignette["draft_order"]] if vignette.get("draft_order") else [])


def expected_warnings(vignette: dict[str, Any]) -> set[str]:
    keys = set(vignette["expected_keys"] or ())
    found = keys & WARNING_KEYS
    if "order-rod-type-mismatch" in keys and any(
        d["concept"] == "rod-telescoping" for d in _drafts_of(vignette)
    ):
        found.add("order-rod-type-mismatch")
    return found


def with_active_orders(vid: str, status: str = "active") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The vignette's record at patient-view, its draft orders now orders on file."""
    bundle, drafts, _ = vignette_today(vid)
    orders = []
    for draft in drafts:
        order = copy.deepcopy(draft)
        order["status"] = status
        order.pop("meta", None)
        orders.append(order)
    bundle["entry"] += [{"resource": o} for o in orders]
    pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    return hook_request("patient-view", pid, prefetch_of(bundle, pid)), orders


def active_cards(base: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{base}/cds-services/oi-management", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert_conformant_response(response.json())
    return [c for c in response.json()["cards"] if c["summary"].startswith(ACTIVE)]


@pytest.mark.parametrize("vignette", ORDER_VIGNETTES, ids=[v["id"] for v in ORDER_VIGNETTES])
def test_active_orders_get_the_warning_order_checks_at_patient_view(
    vignette: dict[str, Any], service: str
) -> None:
    body, orders = with_active_orders(vignette["id"])
    cards = active_cards(service, body)
    assert {c["source"]["topic"]["code"] for c in cards} == expected_warnings(vignette)
    refs = {f"{o['resourceType']}/{o['id']}" for o in orders}
    for card in cards:
        assert card["indicator"] == "warning"
        assert "suggestions" not in card  # an active order is changed in the EHR, not by a card
        assert "Active order on file" in card["detail"]
        assert any(ref in card["detail"] for ref in refs)


@pytest.mark.parametrize("status", ["draft", "completed", "stopped", "cancelled", "entered-in-error"])
def test_orders_not_active_are_not_reviewed(status: str, service: str) -> None:
    body, _ = with_active_orders("s19", status)
    assert active_cards(service, body) == []


def test_the_plan_is_the_same_with_active_orders_on_file(service: str) -> None:
    body, _ = with_active_orders("s19")
    plain = copy.deepcopy(body)
    plain["prefetch"]["medications"]["entry"] = [
        e for e in plain["prefetch"]["medications"]["entry"] if e["resource"]["status"] != "active"
    ]
    with_orders = httpx.post(f"{service}/cds-services/oi-management", json=body, timeout=30).json()
    without = httpx.post(f"{service}/cds-services/oi-management", json=plain, timeout=30).json()
    assert careplan_keys(with_orders) == careplan_keys(without)


def test_an_unreadable_active_order_is_said_not_checked_and_withholds_nothing(service: str) -> None:
    body, _ = with_active_orders("s22")
    entry = body["prefetch"]["serviceRequests"]["entry"][0]["resource"]
    entry["code"] = {"coding": "not an array"}
    response = httpx.post(f"{service}/cds-services/oi-management", json=body, timeout=30)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert not [c for c in cards if c["summary"].startswith(ACTIVE)]
    assert "active ServiceRequest is not usable FHIR; not checked" in cards[0]["detail"]


@pytest.fixture(scope="module")
def review_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("review-off")
    with demo_service(folder, {"OI_CDS_REVIEW_ACTIVE_ORDERS": "false"}) as base:
        yield base


def test_a_site_may_turn_order_review_off(review_off: str) -> None:
    body, _ = with_active_orders("s19")
    assert active_cards(review_off, body) == []
