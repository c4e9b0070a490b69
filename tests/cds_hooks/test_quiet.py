"""Quiet by choice (issue 14, item 3): with OI_CDS_QUIET_WHEN_CURRENT (or the request's
extension org.example.oi-cds.quiet), patient-view answers no cards when the OI care plan on
file is current and no warning applies; a warning is never silenced."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cds_hooks.cds_rules import assert_conformant_response, careplan_keys
from tests.cds_hooks.conftest import hook_request, prefetch_of, vignette_today
from tests.cds_hooks.test_active_orders import ACTIVE, with_active_orders
from tests.conftest import load_vignettes
from tests.servers import demo_service

QUIET = "org.example.oi-cds.quiet"
# the contract's own cards with indicator warning (recommendations.md, "own card")
WARNINGS = {"fracture-care", "basilar-invagination", "spinal-fracture"}
OI_VIGNETTES = [v for v in load_vignettes() if v["hook"] == "patient-view" and v["expected_keys"]]
CALM = next(v["id"] for v in OI_VIGNETTES if not set(v["expected_keys"]) & WARNINGS)  # no warning


@pytest.fixture(scope="module")
def quiet_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with demo_service(tmp_path_factory.mktemp("quiet"), {"OI_CDS_QUIET_WHEN_CURRENT": "true"}) as base:
        yield base


def _call(base: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{base}/cds-services/oi-management", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert_conformant_response(response.json())
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def _drafted_plan(cards: list[dict[str, Any]]) -> dict[str, Any]:
    (action,) = cards[0]["suggestions"][0]["actions"]
    plan: dict[str, Any] = action["resource"]
    return plan


def with_plan_on_file(base: str, body: dict[str, Any], keep: int | None = None) -> dict[str, Any]:
    """The request again, the CarePlan the first answer drafted now on file (active); with
    `keep`, only its first `keep` activities (a plan that is out of date)."""
    plan = copy.deepcopy(_drafted_plan(_call(base, body)))
    plan["status"] = "active"
    if keep is not None:
        plan["activity"] = plan["activity"][:keep]
    again = copy.deepcopy(body)
    again["prefetch"]["carePlans"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": plan}],
    }
    return again


def _request(vid: str) -> dict[str, Any]:
    bundle, _, _ = vignette_today(vid)
    pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    return hook_request("patient-view", pid, prefetch_of(bundle, pid))


@pytest.mark.parametrize("vignette", OI_VIGNETTES, ids=[v["id"] for v in OI_VIGNETTES])
def test_a_current_plan_is_quiet_unless_a_warning_applies(
    vignette: dict[str, Any], quiet_service: str, service: str
) -> None:
    body = with_plan_on_file(quiet_service, _request(vignette["id"]))
    cards = _call(quiet_service, body)
    if set(vignette["expected_keys"]) & WARNINGS:
        assert cards, "a warning is never silenced"
        assert cards[0]["summary"].startswith("OI care plan on file is current")
        assert WARNINGS & {c["source"]["topic"]["code"] for c in cards[1:]}
    else:
        assert cards == []
    # the same call without quiet: the summary says the plan on file is current
    loud = _call(service, body)
    assert loud[0]["summary"].startswith("OI care plan on file is current")


def test_an_out_of_date_plan_is_not_quiet(quiet_service: str) -> None:
    body = with_plan_on_file(quiet_service, _request("s04"), keep=1)
    cards = _call(quiet_service, body)
    assert cards[0]["summary"].startswith("OI care plan on file is out of date")
    assert careplan_keys({"cards": cards})


def test_no_plan_on_file_is_not_quiet(quiet_service: str) -> None:
    cards = _call(quiet_service, _request("s04"))
    assert cards[0]["summary"].startswith("OI management:")


@pytest.mark.parametrize(("asked", "quiet_expected"), [(True, True), (False, False), ("yes", False)])
def test_the_request_extension_overrides_the_setting(
    asked: Any, quiet_expected: bool, service: str, quiet_service: str
) -> None:
    """The extension asks either way; a value that is not a boolean leaves the site's setting."""
    body = with_plan_on_file(service, _request(CALM))
    body["extension"] = {QUIET: asked}
    assert (_call(service, body) == []) is quiet_expected
    body["extension"] = {QUIET: False}
    assert _call(quiet_service, body) != []


def test_an_extension_that_is_not_an_object_is_a_400(service: str) -> None:
    body = {**_request("s04"), "extension": ["quiet"]}
    response = httpx.post(f"{service}/cds-services/oi-management", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "OICDS-H410"


def test_a_warning_on_an_active_order_is_said_in_quiet_mode(quiet_service: str) -> None:
    body, _ = with_active_orders("s19")
    body = with_plan_on_file(quiet_service, body)
    cards = _call(quiet_service, body)
    assert [c["summary"].startswith(ACTIVE) for c in cards] == [True]
