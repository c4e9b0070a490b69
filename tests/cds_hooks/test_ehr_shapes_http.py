"""Real EHR shapes and other patients' data through the hooks (real uvicorn, FHIR stubs).

The same shapes as tests/clinical/test_ehr_shapes.py, sent as prefetch; resources of another
patient in every prefetch key and in the FHIR fallback; FHIR servers that match only one form
of the patient reference. The keys must equal those of the clean request.
"""

from __future__ import annotations

import copy
import io
import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli import _parser, run_plan
from tests.cds_hooks.cds_rules import assert_conformant_response, careplan_keys, keys_of
from tests.cds_hooks.conftest import hook_request, vignette_today
from tests.conftest import load_vignettes
from tests.servers import free_port, service_command, uvicorn_server
from tests.shapes import SHAPES

VIGNETTES = load_vignettes()
SERVICE_OF = {
    "patient-view": "oi-management",
    "order-select": "oi-order-select",
    "order-sign": "oi-order-sign",
}
KEY_OF = {
    "Condition": "conditions",
    "Observation": "observations",
    "MedicationRequest": "medications",
    "MedicationStatement": "medicationStatements",
    "ServiceRequest": "serviceRequests",
    "CarePlan": "carePlans",
}
JSON = dict[str, Any]


def _searchset(resources: list[JSON]) -> JSON:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def prefetch_from(record: JSON) -> JSON:
    """Prefetch as an EHR fills it: every resource under its key, Medications _included."""
    resources = [e["resource"] for e in record["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    by_key: dict[str, list[JSON]] = {k: [] for k in KEY_OF.values()}
    for r in resources:
        if r["resourceType"] in KEY_OF:
            by_key[KEY_OF[r["resourceType"]]].append(r)
        elif r["resourceType"] == "Medication":
            by_key["medications"].append(r)
    return {"patient": patient, **{k: _searchset(v) for k, v in by_key.items()}}


def request_for(vid: str, shape: str | None = None, fhir_server: str | None = None) -> tuple[JSON, JSON]:
    record, drafts, vignette = vignette_today(vid)
    draft_ids = [d["id"] for d in drafts]
    if shape is not None:
        both = copy.deepcopy(record)
        both["entry"] += [{"resource": d} for d in drafts]
        shaped = SHAPES[shape](both)
        by_id = {e["resource"].get("id"): e["resource"] for e in shaped["entry"]}
        drafts = [by_id[i] for i in draft_ids]
        shaped["entry"] = [e for e in shaped["entry"] if e["resource"].get("id") not in draft_ids]
        record = shaped
    pid = next(e["resource"]["id"] for e in record["entry"] if e["resource"]["resourceType"] == "Patient")
    selections = None
    if vignette.get("selections") is not None:
        selections = [f"{drafts[i]['resourceType']}/{drafts[i]['id']}" for i in vignette["selections"]]
    prefetch = None if fhir_server else prefetch_from(record)
    extra = {"fhirServer": fhir_server} if fhir_server else {}
    body = hook_request(vignette["hook"], pid, prefetch, drafts=drafts, selections=selections, **extra)
    return body, vignette


def call(service: str, body: JSON, hook: str) -> set[str]:
    response = httpx.post(f"{service}/cds-services/{SERVICE_OF[hook]}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert_conformant_response(response.json())
    return careplan_keys(response.json()) if hook == "patient-view" else keys_of(response.json())


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_over_every_vignette_through_the_hooks(shape: str, service: str) -> None:
    for v in VIGNETTES:
        clean, _ = request_for(v["id"])
        shaped, _ = request_for(v["id"], shape)
        keys = call(service, shaped, v["hook"])
        assert set(v["expected_keys"]) <= keys, (v["id"], shape)
        assert not set(v["expected_absent"]) & keys, (v["id"], shape)
        assert keys == call(service, clean, v["hook"]), (v["id"], shape)


def _foreign(resource_type: str) -> JSON:
    """Another patient's resource that would change a type I child's plan if it were read."""
    other = {"reference": "Patient/someone-else"}
    snomed = "http://snomed.info/sct"
    return {
        "Condition": {
            "resourceType": "Condition",
            "id": "foreign-oi3",
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "code": {"coding": [{"system": snomed, "code": "385483009"}], "text": "OI type III"},
            "subject": other,
        },
        "Observation": {
            "resourceType": "Observation",
            "id": "foreign-amb",
            "status": "final",
            "code": {
                "coding": [
                    {
                        "system": "https://oi-cds.example.org/CodeSystem/oi-observation",
                        "code": "ambulatory-status",
                    }
                ]
            },
            "valueCodeableConcept": {
                "coding": [
                    {"system": "https://oi-cds.example.org/CodeSystem/oi-observation", "code": "wheelchair"}
                ]
            },
            "effectiveDateTime": "2026-01-01",
            "subject": other,
        },
        "MedicationRequest": {
            "resourceType": "MedicationRequest",
            "id": "foreign-med",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "pamidronate"},
            "subject": other,
        },
        "MedicationStatement": {
            "resourceType": "MedicationStatement",
            "id": "foreign-ms",
            "status": "active",
            "medicationCodeableConcept": {"text": "zoledronic acid"},
            "subject": other,
        },
        "ServiceRequest": {  # an investigational order: a warning card if it were reviewed
            "resourceType": "ServiceRequest",
            "id": "foreign-sr",
            "status": "active",
            "intent": "order",
            "code": {"text": "COL1A1 gene therapy (experimental)"},
            "subject": other,
        },
        "CarePlan": {
            "resourceType": "CarePlan",
            "id": "foreign-plan",
            "status": "active",
            "intent": "plan",
            "instantiatesCanonical": ["https://oi-cds.example.org/PlanDefinition/oi-management|1.0.0"],
            "subject": other,
        },
    }[resource_type]


@pytest.mark.parametrize("resource_type", sorted(KEY_OF))
@pytest.mark.parametrize("vid", ["s01", "s05", "s09"])
def test_another_patients_resource_in_prefetch_never_reaches_the_facts(
    vid: str, resource_type: str, service: str
) -> None:
    """Safety defect (issue 19): a foreign OI type III Condition turned a mild plan severe."""
    clean, v = request_for(vid)
    dirty = copy.deepcopy(clean)
    dirty["prefetch"][KEY_OF[resource_type]]["entry"].append({"resource": _foreign(resource_type)})
    no_subject = copy.deepcopy(_foreign(resource_type))
    no_subject.pop("subject")
    no_subject["id"] += "-nosubject"
    dirty["prefetch"][KEY_OF[resource_type]]["entry"].append({"resource": no_subject})
    assert call(service, dirty, v["hook"]) == call(service, clean, v["hook"])
    body = httpx.post(f"{service}/cds-services/{SERVICE_OF[v['hook']]}", json=dirty).json()
    assert "foreign" not in str(body)
    metrics = httpx.get(f"{service}/metrics").text
    assert f'oi_cds_foreign_resources_dropped_total{{type="{resource_type}"}}' in metrics


@pytest.fixture(scope="module")
def odd_servers(stub_data: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """FHIR stubs that behave as other servers do, and one service allow-listing them all."""
    folder = tmp_path_factory.mktemp("odd")
    shaped = []
    for v in VIGNETTES:
        record, _, _ = vignette_today(v["id"])
        path = folder / f"{v['id']}-medication-refs.json"
        path.write_text(json.dumps(SHAPES["bundled-medication"](record)))
        shaped.append(str(path))
    variants = {
        # MedicationRequests name their drug as Medication/<id>, which only a read brings
        "medication-refs": {"FHIR_STUB_DATA": ":".join(shaped)},
        "typed": {"FHIR_STUB_PATIENT_FORM": "typed"},
        "bare": {"FHIR_STUB_PATIENT_FORM": "bare"},
        "ignores-patient": {"FHIR_STUB_IGNORE_PATIENT": "1"},
        "exact-canonicals": {"FHIR_STUB_CANONICAL": "exact"},
    }
    with _stubs(variants, stub_data, folder) as bases:
        port = free_port()
        env = {
            "OI_CDS_DEMO": "true",
            "OI_CDS_DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "OI_CDS_FHIR_ALLOWLIST": ",".join(bases.values()),
            "OI_CDS_FHIR_MAX_PAGES": "200",
        }
        with uvicorn_server(service_command(port), port, folder / "service.txt", env) as base:
            yield {"service": base, **bases}


class _stubs:
    def __init__(self, variants: dict[str, dict[str, str]], data: list[Path], folder: Path) -> None:
        self.variants, self.data, self.folder = variants, data, folder
        self.servers: list[Any] = []

    def __enter__(self) -> dict[str, str]:
        bases = {}
        for name, extra in self.variants.items():
            port = free_port()
            command = [sys.executable, "-m", "uvicorn", "tests.cds_hooks.fhir_stub:app", "--port", str(port)]
            env = {"FHIR_STUB_DATA": ":".join(str(p) for p in self.data)} | extra
            server = uvicorn_server(command, port, self.folder / f"{name}.txt", env)
            bases[name] = server.__enter__() + "/fhir"
            self.servers.append(server)
        return bases

    def __exit__(self, *exc: object) -> None:
        for server in reversed(self.servers):
            server.__exit__(None, None, None)


@pytest.mark.parametrize("variant", ["typed", "bare", "ignores-patient", "medication-refs"])
def test_the_fallback_gives_the_prefetch_cards_whatever_the_servers_search_rules(
    variant: str, odd_servers: dict[str, str]
) -> None:
    service = odd_servers["service"]
    for v in VIGNETTES:
        with_prefetch, _ = request_for(v["id"])
        without, _ = request_for(v["id"], fhir_server=odd_servers[variant])
        assert call(service, without, v["hook"]) == call(service, with_prefetch, v["hook"]), (
            v["id"],
            variant,
        )


def test_the_care_plan_on_file_is_found_whatever_the_servers_canonical_matching(
    odd_servers: dict[str, str],
) -> None:
    """Issue 19: a versioned instantiatesCanonical was missed by an unversioned search, so every
    chart open offered to create the plan again."""
    service, fhir = odd_servers["service"], odd_servers["exact-canonicals"]
    body, _ = request_for("s04", fhir_server=fhir)
    first = httpx.post(f"{service}/cds-services/oi-management", json=body).json()
    (action,) = [a for s in first["cards"][0]["suggestions"] for a in s["actions"]]
    assert action["type"] == "create"
    plan = {**action["resource"], "id": "on-file-1"}
    assert any("|" in c for c in plan["instantiatesCanonical"])  # written versioned
    assert httpx.put(f"{fhir}/CarePlan/on-file-1", json=plan).status_code == 200
    again = httpx.post(f"{service}/cds-services/oi-management", json=body).json()
    assert again["cards"][0]["summary"].startswith("OI care plan on file is current")
    assert "suggestions" not in again["cards"][0]


@pytest.mark.parametrize(
    "mistyped",
    [
        {"medicationCodeableConcept": "x"},
        {"medicationCodeableConcept": {"coding": "x"}},
        {"dosageInstruction": ["iv"]},
        {"medicationReference": "x"},
        {"contained": [{"resourceType": "Medication", "id": "m", "code": {"coding": [5]}}]},
    ],
    ids=["concept-string", "coding-string", "dosage-string", "reference-string", "contained-bad"],
)
def test_mistyped_draft_orders_are_a_clear_400(mistyped: JSON, service: str) -> None:
    body, _ = request_for("s22")
    draft = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "denosumab"},
        "subject": {"reference": f"Patient/{body['context']['patientId']}"},
    }
    body["context"]["draftOrders"]["entry"] = [{"resource": {**draft, **mistyped}}]
    response = httpx.post(f"{service}/cds-services/{SERVICE_OF[body['hook']]}", json=body)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "draft order is not usable FHIR" in outcome["issue"][0]["diagnostics"]


def _all_patient_view_records(shape: str) -> tuple[JSON, dict[str, JSON]]:
    """One Bundle of every patient-view vignette (dates moved to today), shaped; vignette by id."""
    entries: list[JSON] = []
    by_patient: dict[str, JSON] = {}
    for v in VIGNETTES:
        if v["hook"] != "patient-view":
            continue
        record, _, _ = vignette_today(v["id"])
        shaped = SHAPES[shape](record)
        pid = next(e["resource"]["id"] for e in shaped["entry"] if e["resource"]["resourceType"] == "Patient")
        by_patient[f"Patient/{pid}"] = v
        entries += shaped["entry"]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}, by_patient


def _careplan_keys(careplan: JSON) -> set[str]:
    rec = "https://oi-cds.example.org/CodeSystem/oi-recommendation"
    return {
        c["code"] for a in careplan["activity"] for c in a["detail"]["code"]["coding"] if c["system"] == rec
    }


def _check_outcomes(entries: list[JSON], by_patient: dict[str, JSON], shape: str) -> None:
    planned = {
        e["resource"]["subject"]["reference"]: e["resource"]
        for e in entries
        if e["resource"]["resourceType"] == "CarePlan"
    }
    for ref, v in by_patient.items():
        keys = _careplan_keys(planned[ref]) if ref in planned else set()
        assert set(v["expected_keys"]) <= keys, (v["id"], shape)
        assert not set(v["expected_absent"]) & keys, (v["id"], shape)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_through_apply(shape: str, service: str) -> None:
    bundle, by_patient = _all_patient_view_records(shape)
    response = httpx.post(
        f"{service}/fhir/PlanDefinition/oi-management/$apply",
        json=bundle,
        headers={"Content-Type": "application/fhir+json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    _check_outcomes(response.json()["entry"], by_patient, shape)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_through_the_cli(shape: str, tmp_path: Path) -> None:
    bundle, by_patient = _all_patient_view_records(shape)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    out, err = io.StringIO(), io.StringIO()
    assert (
        run_plan(_parser().parse_args(["plan", "--at", date.today().isoformat(), str(path)]), out, err) == 0
    )
    _check_outcomes(json.loads(out.getvalue())["entry"], by_patient, shape)


def test_epic_and_oracle_style_extras_in_the_hook_request(service: str, fhir_stub: str) -> None:
    """extension members in context, fhirAuthorization with subject and extra members,
    draftOrders entries with fullUrl, selections as MedicationRequest/<id>: all accepted."""
    for vid in ("s04", "s17", "s22"):
        clean, v = request_for(vid)
        extra = copy.deepcopy(clean)
        extra["context"]["extension"] = {"com.epic.cdshooks.request.bpa-trigger-action": "OnOpen"}
        extra["extension"] = {"com.cerner.cdshooks.pilot": True}
        extra["fhirServer"] = fhir_stub  # full prefetch: nothing is fetched
        extra["fhirAuthorization"] = {
            "access_token": "opaque-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service-client",
            "patient": extra["context"]["patientId"],
            "epic.dstu2.patient": "T1234",
        }
        extra["context"]["encounterId"] = "enc-1"
        for entry in extra["context"].get("draftOrders", {}).get("entry", []):
            r = entry["resource"]
            entry["fullUrl"] = f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}"
        assert call(service, extra, v["hook"]) == call(service, clean, v["hook"]), vid
