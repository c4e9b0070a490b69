"""Shadow mode (issue 14, item 5), table-driven over the shared vignettes through a real uvicorn:
no cards (except to pilot users), what would have been shown recorded by key with a hashed
patient id, and the go-live report's numbers equal to the answers the live service gives."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cds_hooks.cds_rules import careplan_keys
from tests.cds_hooks.test_vignettes_http import SERVICE_OF, _request
from tests.conftest import load_vignettes
from tests.servers import demo_service

VIGNETTES = load_vignettes()
PILOT = "Practitioner/pilot-1"


@pytest.fixture(scope="module")
def shadow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("shadow")
    env = {"OI_CDS_MODE": "shadow", "OI_CDS_SHADOW_PILOT_USERS": PILOT, "OI_CDS_EVENTS_FLUSH_S": "60"}
    with demo_service(folder, env) as base:
        yield base, folder / "db.sqlite3"


def _call(base: str, body: dict[str, Any], hook: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{base}/cds-services/{SERVICE_OF[hook]}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def _would_show(hook: str, cards: list[dict[str, Any]]) -> set[str]:
    """What the live answer shows, by recommendation key (the summary card lists the plan)."""
    keys = {c["source"]["topic"]["code"] for c in cards} - {"careplan-summary"}
    return keys | (careplan_keys({"cards": cards}) if hook == "patient-view" and cards else set())


def test_shadow_mode_answers_no_cards_records_them_and_reports_them(
    shadow: tuple[str, Path], service: str
) -> None:
    base, database = shadow
    expected: Counter[str] = Counter()
    patients: set[str] = set()
    sign_days_with_warning = sign_days = 0
    for vignette in VIGNETTES:
        body, v = _request(vignette["id"], with_prefetch=True)
        live = _call(service, body, v["hook"])
        assert _call(base, body, v["hook"]) == []  # a clinician outside the pilot sees nothing
        body["context"]["userId"] = PILOT
        pilot = _call(base, body, v["hook"])
        assert [c["summary"] for c in pilot] == [c["summary"] for c in live]  # the pilot sees it all
        for key in _would_show(v["hook"], live):
            expected[key] += 2  # both calls were evaluated and recorded
        patients.add(body["context"]["patientId"])
        if v["hook"] == "order-sign":
            sign_days += 1
            sign_days_with_warning += any(c["indicator"] == "warning" for c in live)
    report = httpx.get(base + "/admin/shadow.json", timeout=30).json()
    got = Counter({e["recommendation"]: 0 for e in report["byRuleAndWeek"]})
    for e in report["byRuleAndWeek"]:
        got[e["recommendation"]] += e["fired"]
    assert got == expected
    assert report["patients"] == len(patients)
    assert sum(report["calls"].values()) == 2 * len(VIGNETTES)
    assert report["mode"] == "shadow"
    order_sign = report["orderSign"]
    assert (order_sign["patientDays"], order_sign["withAWarning"]) == (sign_days, sign_days_with_warning)
    for row in report["perPatient"]:
        assert row["maxPerPatient"] >= row["meanPerPatient"] >= 1
    page = httpx.get(base + "/admin/shadow", timeout=30)
    assert page.status_code == 200
    assert "<svg" in page.text
    assert "go-live report" in page.text
    # what is kept holds no patient id, only its HMAC
    raw = database.read_bytes() + (
        database.with_name(database.name + "-wal").read_bytes()
        if database.with_name(database.name + "-wal").exists()
        else b""
    )
    assert raw.count(b"shadow_events") >= 1
    for pid in patients:
        assert pid.encode() not in raw


def test_live_mode_records_no_shadow_events(service: str) -> None:
    report = httpx.get(service + "/admin/shadow.json", timeout=30).json()
    assert report["mode"] == "live"
    assert report["byRuleAndWeek"] == []
