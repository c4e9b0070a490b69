"""Every shared vignette through the library: expected keys present, expected_absent absent."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.plan_builder import Planner
from services.plan_builder.bundle import split_bundle
from services.plan_builder.orders import OrderChecker
from tests.conftest import load_vignettes, vignette_bundle

VIGNETTES = load_vignettes()
REC = "https://oi-cds.example.org/CodeSystem/oi-recommendation"


def _is_draft(resource: dict[str, Any]) -> bool:
    return any(t.get("code") == "draft-order" for t in resource.get("meta", {}).get("tag", []))


def _record_and_drafts(vid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bundle = vignette_bundle(vid)
    drafts = [e["resource"] for e in bundle["entry"] if _is_draft(e["resource"])]
    bundle["entry"] = [e for e in bundle["entry"] if not _is_draft(e["resource"])]
    return bundle, drafts


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_vignette(vignette: dict[str, Any], planner: Planner, checker: OrderChecker) -> None:
    record, drafts = _record_and_drafts(vignette["id"])
    group = split_bundle(record).groups[0]
    at = date.fromisoformat(vignette["evaluation_date"])
    result = planner.plan(group.patient, group.resources, at, patient_ref=group.ref)
    if vignette["hook"] == "patient-view":
        keys = set(result.keys)
        assert (result.careplan is None) == (not vignette["expected_keys"])
    else:
        selections = vignette.get("selections")
        orders = [drafts[i] for i in selections] if selections is not None else drafts
        keys = {f.key for f in checker.check(orders, result.facts)}
    assert set(vignette["expected_keys"]) <= keys, vignette["note"]
    assert not set(vignette["expected_absent"]) & keys, vignette["note"]


def test_patient_view_vignettes_through_the_cli(tmp_path: Path) -> None:
    """The same acceptance run as a user would do it: one multi-patient Bundle per date."""
    views = [v for v in VIGNETTES if v["hook"] == "patient-view"]
    by_day: dict[str, list[dict[str, Any]]] = {}
    for v in views:
        by_day.setdefault(v["evaluation_date"], []).append(v)
    got: dict[str, set[str]] = {}
    for day, group in by_day.items():
        entries, owner = [], {}
        for v in group:
            record, _ = _record_and_drafts(v["id"])
            owner[record["entry"][0]["resource"]["id"]] = v["id"]
            entries += record["entry"]
        path = tmp_path / f"{day}.json"
        path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
        run = subprocess.run(
            [sys.executable, "-m", "services.cli", "plan", "--at", day, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        for entry in json.loads(run.stdout)["entry"]:
            careplan = entry["resource"]
            assert careplan["resourceType"] == "CarePlan"
            vid = owner[careplan["subject"]["reference"].removeprefix("Patient/")]
            got[vid] = {
                c["code"]
                for a in careplan["activity"]
                for c in a["detail"]["code"]["coding"]
                if c["system"] == REC
            }
    for v in views:
        keys = got.get(v["id"], set())
        assert set(v["expected_keys"]) <= keys, v["id"]
        assert not set(v["expected_absent"]) & keys, v["id"]
