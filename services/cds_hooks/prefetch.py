"""Prefetch templates, and getting each key's data: from prefetch, else from the FHIR server.

A key that is missing from ``prefetch`` was not fetched (fetch just that one); ``null`` or an
empty searchset means "no data"; an OperationOutcome, or a Bundle with an error outcome or a
``next`` link, needs the server. Required keys that cannot be had give 412.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from services.cds_hooks.errors import BadRequest, PayloadTooLarge, PreconditionFailed
from services.cds_hooks.fhir_client import (
    FhirClient,
    FhirFetchError,
    entries_of,
    has_error_outcome,
    next_link,
)
from services.cds_hooks.models import HookRequest
from services.plan_builder.knowledge import MANAGEMENT_PLAN
from services.plan_builder.types import JSON

OBS = "https://oi-cds.example.org/CodeSystem/oi-observation"


@dataclass(frozen=True, slots=True)
class PrefetchKey:
    key: str
    resource_type: str
    template: str
    required: bool
    what: str  # for messages: what could not be had / checked

    @property
    def is_read(self) -> bool:
        return "?" not in self.template


# Never filter away what the contract reads: healed fractures, completed cycles, older
# observations. Observations are narrowed to the three codes the rules read (token search).
KEYS = (
    PrefetchKey("patient", "Patient", "Patient/{{context.patientId}}", True, "the patient"),
    PrefetchKey("conditions", "Condition", "Condition?patient={{context.patientId}}", True, "conditions"),
    PrefetchKey(
        "observations",
        "Observation",
        "Observation?patient={{context.patientId}}&code="
        + ",".join(
            f"{OBS}|{c}" for c in ("ambulatory-status", "skeletal-maturity", "medullary-canal-diameter")
        ),
        True,
        "observations",
    ),
    PrefetchKey(
        "medications",
        "MedicationRequest",
        "MedicationRequest?patient={{context.patientId}}",
        True,
        "medication requests",
    ),
    PrefetchKey(
        "medicationStatements",
        "MedicationStatement",
        "MedicationStatement?patient={{context.patientId}}",
        False,
        "medication statements (other bisphosphonate use)",
    ),
    PrefetchKey(
        "carePlans",
        "CarePlan",
        "CarePlan?patient={{context.patientId}}&instantiates-canonical=" + MANAGEMENT_PLAN,
        False,
        "care plans on file",
    ),
)
TEMPLATES = {k.key: k.template for k in KEYS}


@dataclass
class PatientData:
    patient: JSON
    resources: list[JSON] = field(default_factory=list)
    care_plans: list[JSON] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # best-effort keys that could not be had
    fetched: list[str] = field(default_factory=list)  # keys that came from the FHIR server


def render(template: str, context: dict[str, Any]) -> str:
    return template.replace("{{context.patientId}}", quote(str(context["patientId"]), safe=""))


def _from_prefetch(spec: PrefetchKey, value: Any, max_entries: int) -> list[JSON] | None:
    """The key's resources, or None when the server is needed. Raises on a wrong resource."""
    if value is None:
        return []
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise BadRequest(f"prefetch key '{spec.key}' is not a FHIR resource")
    rtype = value["resourceType"]
    if rtype == "OperationOutcome":
        return None
    if spec.is_read:
        if rtype != spec.resource_type:
            raise BadRequest(f"prefetch key '{spec.key}' holds a {rtype}, expected {spec.resource_type}")
        return [value]
    if rtype != "Bundle":
        raise BadRequest(
            f"prefetch key '{spec.key}' holds a {rtype}, expected a Bundle of {spec.resource_type}"
        )
    entries = value.get("entry")
    if isinstance(entries, list) and len(entries) > max_entries:
        raise PayloadTooLarge(f"prefetch key '{spec.key}' has more than {max_entries} entries")
    if has_error_outcome(value) or next_link(value) is not None:
        return None
    return entries_of(value, spec.resource_type)


async def gather(request: HookRequest, client: FhirClient) -> PatientData:
    prefetch = request.prefetch or {}
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    server = request.fhirServer if client.usable(request.fhirServer) else None
    found: dict[str, list[JSON]] = {}
    missing: list[str] = []
    unchecked: list[str] = []
    fetched: list[str] = []
    for spec in KEYS:
        resources = (
            _from_prefetch(spec, prefetch[spec.key], client.max_entries) if spec.key in prefetch else None
        )
        if resources is None and server is not None:
            try:
                path = render(spec.template, request.context)
                if spec.is_read:
                    resources = [await client.get(server, path, token)]
                    if resources[0].get("resourceType") != spec.resource_type:
                        raise FhirFetchError(
                            f"the FHIR server returned a {resources[0].get('resourceType')} for {spec.what}"
                        )
                else:
                    resources = await client.search(server, path, token, spec.resource_type)
                fetched.append(spec.key)
            except FhirFetchError as exc:
                (missing if spec.required else unchecked).append(f"{spec.what}: {exc}")
                continue
        if resources is None:
            reason = "not in prefetch and no usable FHIR server" if server is None else "not available"
            (missing if spec.required else unchecked).append(f"{spec.what}: {reason}")
            continue
        found[spec.key] = resources
    if missing:
        raise PreconditionFailed("required FHIR data could not be obtained: " + "; ".join(missing))
    patients = found["patient"]
    if not patients:
        raise PreconditionFailed("the patient could not be obtained (prefetch 'patient' is null)")
    patient = patients[0]
    if patient.get("id") not in (None, request.context["patientId"]):
        raise BadRequest("prefetch 'patient' is not the patient named by context.patientId")
    resources = [
        r
        for key in ("conditions", "observations", "medications", "medicationStatements")
        for r in found.get(key, [])
    ]
    return PatientData(patient, resources, found.get("carePlans", []), unchecked, fetched)
