"""Everything FHIR the running service sends, against HL7's FHIR R4 JSON Schema (fhir.schema.json,
http://hl7.org/fhir/json-schema/4.0), a validator nobody here wrote: the resources the cards
suggest, $apply's CarePlans, Bundles (one Bundle, Parameters, NDJSON) and OperationOutcomes, the
knowledge artifacts served under /fhir, the CapabilityStatement, and the error bodies of bad
calls. fhir.resources checks the same documents elsewhere; the schema also refuses any element
FHIR does not define (additionalProperties: false), which a lenient model would keep."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.cds_hooks.conftest import example_bundle
from tests.cds_hooks.test_ehr_shapes_http import SERVICE_OF, request_for
from tests.conftest import load_vignettes
from tests.node_tools import Hl7Tools

APPLY = "/fhir/PlanDefinition/oi-management/$apply"
JSON_TYPE = "application/json"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
KNOWLEDGE_TYPES = ["PlanDefinition", "ActivityDefinition", "CodeSystem", "ValueSet", "StructureDefinition"]


def _suggested(cards: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        action["resource"]
        for card in cards["cards"]
        for suggestion in card.get("suggestions", [])
        for action in suggestion.get("actions", [])
        if "resource" in action
    ]


def _documents(service: str) -> dict[str, dict[str, Any]]:
    """What the service answers, by where it came from."""
    documents: dict[str, dict[str, Any]] = {}
    for vignette in load_vignettes():
        body, _ = request_for(vignette["id"])
        cards = httpx.post(f"{service}/cds-services/{SERVICE_OF[vignette['hook']]}", json=body, timeout=30)
        assert cards.status_code == 200, cards.text
        for i, resource in enumerate(_suggested(cards.json())):
            documents[f"{vignette['id']} suggestion {i}"] = resource
    documents["CapabilityStatement"] = httpx.get(f"{service}/fhir/metadata").json()
    for rtype in KNOWLEDGE_TYPES:
        documents[f"{rtype} searchset"] = httpx.get(f"{service}/fhir/{rtype}").json()
    bundle = example_bundle()
    apply = f"{service}{APPLY}?evaluationDate=2026-06-01"
    documents["$apply Bundle"] = httpx.post(apply, json=bundle, headers=FHIR_JSON).json()
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subject", "valueReference": {"reference": "Patient/oi-type-iii-child"}},
            {"name": "data", "resource": bundle},
        ],
    }
    documents["$apply Parameters"] = httpx.post(apply, json=parameters, headers=FHIR_JSON).json()
    lines = b"".join(json.dumps(e["resource"]).encode() + b"\n" for e in bundle["entry"]) + b"{oops}\n"
    ndjson = httpx.post(apply, content=lines, headers={"Content-Type": "application/fhir+ndjson"})
    for i, line in enumerate(ndjson.text.splitlines()):
        documents[f"$apply NDJSON line {i}"] = json.loads(line)
    bad = {
        "malformed JSON hook call": httpx.post(
            f"{service}/cds-services/oi-management", content=b"{oops", headers={"Content-Type": JSON_TYPE}
        ),
        "unknown service": httpx.post(f"{service}/cds-services/nope", json={}),
        "no such artifact": httpx.get(f"{service}/fhir/PlanDefinition/nope"),
        "$apply of a Patient": httpx.post(apply, json={"resourceType": "Patient"}, headers=FHIR_JSON),
    }
    for name, response in bad.items():
        assert 400 <= response.status_code < 500, (name, response.status_code)
        documents[name] = response.json()
    return documents


def test_what_the_service_sends_is_valid_by_hl7s_r4_json_schema(service: str, hl7: Hl7Tools) -> None:
    documents = _documents(service)
    types = {d["resourceType"] for d in documents.values()}
    assert {"CarePlan", "MedicationRequest", "ServiceRequest", "Bundle", "OperationOutcome"} <= types
    problems = dict(zip(documents, hl7.schema_problems(list(documents.values())), strict=True))
    assert not {name: p for name, p in problems.items() if p}


def test_the_schema_check_refuses_what_fhir_does_not_define(hl7: Hl7Tools) -> None:
    """The check can fail: an element R4 does not have, a malformed date, a wrong type. (Not a
    string where an object belongs: the schema does not type its complex types as objects.)"""
    careplan: dict[str, Any] = {"resourceType": "CarePlan", "status": "draft", "intent": "proposal"}
    careplan["subject"] = {"reference": "Patient/p1"}
    broken = [
        {**careplan, "recommendationKeys": ["fracture-care"]},
        {**careplan, "created": "1 June 2026"},
        {**careplan, "activity": {"detail": {"status": "not-started"}}},
        {**careplan, "status": 3},
    ]
    problems = hl7.schema_problems([careplan, *broken])
    assert problems[0] == []
    assert all(problems[1:]), problems
