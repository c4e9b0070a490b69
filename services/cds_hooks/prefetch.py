"""Prefetch templates, and getting each key's data: from prefetch, else from the FHIR server.

A key that is missing from ``prefetch`` was not fetched (fetch just that one); ``null`` or an
empty searchset means "no data"; an OperationOutcome, or a Bundle with an error outcome or a
``next`` link, needs the server. Required keys that cannot be had give 412.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from services.cds_hooks import metrics
from services.cds_hooks.errors import BadRequest, Msg, PayloadTooLarge, PreconditionFailed
from services.cds_hooks.fhir_client import (
    FhirClient,
    FhirFetchError,
    FhirRefused,
    has_error_outcome,
    next_link,
)
from services.cds_hooks.models import HookRequest
from services.cds_hooks.scopes import allows, granted
from services.plan_builder import Knowledge
from services.plan_builder.bundle import normalize_patient_ref
from services.plan_builder.medications import index_medications, unresolved_reference
from services.plan_builder.structural import SHARED_TYPES
from services.plan_builder.types import JSON

log = logging.getLogger("oi_cds.fhir")
ACTIVE_ORDER_TYPES = frozenset({"MedicationRequest", "ServiceRequest"})
ACTIVE_ORDER_STATUS = frozenset({"active", "on-hold"})


@dataclass(frozen=True, slots=True)
class PrefetchKey:
    key: str
    resource_type: str
    template: str
    required: bool
    what: str  # for messages: what could not be had / checked
    includes: tuple[str, ...] = ()  # other resource types the search brings (_include)

    @property
    def is_read(self) -> bool:
        return "?" not in self.template


def observation_codes(knowledge: Knowledge) -> list[tuple[str, str]]:
    """The codes of every Observation fact: the knowledge's ValueSets plus the site's local codes."""
    term = knowledge.terminology
    codes: list[tuple[str, str]] = []
    for fact in knowledge.vocabulary.observation_facts:
        members = sorted(key for key, vids in term.codes.items() if fact.question in vids)
        for pair in [*members, *knowledge.site.mapped_sources(fact.question, term)]:
            if pair not in codes:
                codes.append(pair)
    return codes


def prefetch_keys(knowledge: Knowledge) -> tuple[PrefetchKey, ...]:
    """The prefetch templates, derived from the knowledge (and the site's maps).

    Never filter away what the contract reads: healed fractures, completed cycles, older
    observations. Observations are narrowed to the codes the facts read (token search), so a
    code added to those ValueSets, or mapped by the site, is asked for too.
    """
    obs = ",".join(
        f"{quote(system, safe=':/.-')}|{quote(code, safe='')}"
        for system, code in observation_codes(knowledge)
    )
    return (
        PrefetchKey("patient", "Patient", "Patient/{{context.patientId}}", True, "the patient"),
        PrefetchKey("conditions", "Condition", "Condition?patient={{context.patientId}}", True, "conditions"),
        PrefetchKey(
            "observations",
            "Observation",
            f"Observation?patient={{{{context.patientId}}}}&code={obs}",
            True,
            "observations",
        ),
        PrefetchKey(
            "medications",
            "MedicationRequest",
            "MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:medication",
            True,
            "medication requests",
            ("Medication",),
        ),
        PrefetchKey(
            "medicationStatements",
            "MedicationStatement",
            "MedicationStatement?patient={{context.patientId}}&_include=MedicationStatement:medication",
            False,
            "medication statements (other bisphosphonate use)",
            ("Medication",),
        ),
        PrefetchKey(
            "serviceRequests",
            "ServiceRequest",
            "ServiceRequest?patient={{context.patientId}}&status=active,on-hold",
            False,
            "active service requests (orders reviewed at patient-view)",
        ),
        # Not narrowed by instantiates-canonical: servers differ on whether an unversioned
        # canonical matches a versioned one, and a missed plan on file would offer "create" again.
        # The plans are matched to our PlanDefinition here (cards.plan_on_file).
        PrefetchKey(
            "carePlans",
            "CarePlan",
            "CarePlan?patient={{context.patientId}}&status=active,draft",
            False,
            "care plans on file",
        ),
    )


def templates(keys: tuple[PrefetchKey, ...]) -> dict[str, str]:
    return {k.key: k.template for k in keys}


@dataclass
class PatientData:
    patient: JSON
    resources: list[JSON] = field(default_factory=list)
    care_plans: list[JSON] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # best-effort keys that could not be had
    fetched: list[str] = field(default_factory=list)  # keys that came from the FHIR server
    without_oi: bool = False  # no OI Condition at all: the rest was not read
    orders: list[JSON] = field(default_factory=list)  # the patient's active orders (order review)


def render(template: str, context: dict[str, Any]) -> str:
    """The template as this service sends it to a FHIR server on the fallback path.

    Searches name the patient as a typed reference (``patient=Patient/<id>``): FHIR allows
    ``<id>``, ``<type>/<id>`` and a URL, and some servers (Medplum) match only the typed form;
    a server that refuses it is asked again with the bare id (``bare_id``).
    """
    pid = quote(str(context["patientId"]), safe="")
    return template.replace("patient={{context.patientId}}", f"patient=Patient/{pid}").replace(
        "{{context.patientId}}", pid
    )


def bare_id(path: str, context: dict[str, Any]) -> str:
    pid = quote(str(context["patientId"]), safe="")
    return path.replace(f"patient=Patient/{pid}", f"patient={pid}")


def owned(resources: list[JSON], patient_id: str) -> list[JSON]:
    """The resources whose subject/patient is the context patient (and shared Medications).

    A FHIR server that ignores a search parameter it does not support answers with other
    patients' data; none of it may reach the facts. Dropped resources are counted, not named.
    """
    target = f"Patient/{patient_id}"
    uuid_form = f"urn:uuid:{patient_id}"  # data written as a Bundle with fullUrl urn:uuid:<id>
    kept = []
    for resource in resources:
        if resource.get("resourceType") in SHARED_TYPES:
            kept.append(resource)
            continue
        subject = resource.get("subject") or resource.get("patient")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if reference in (target, uuid_form) or (
            isinstance(reference, str) and normalize_patient_ref(reference) == target
        ):
            kept.append(resource)
        else:
            metrics.FOREIGN_DROPPED.labels(resource.get("resourceType", "unknown")[:40]).inc()
    return kept


def _from_prefetch(spec: PrefetchKey, value: Any, max_entries: int) -> list[JSON] | None:
    """The key's resources, or None when the server is needed. Raises on a wrong resource."""
    if value is None:
        return []
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise BadRequest(f"prefetch key '{spec.key}' is not a FHIR resource", msg=Msg.INVALID_PREFETCH)
    rtype = value["resourceType"]
    if rtype == "OperationOutcome":
        return None
    if spec.is_read:
        if rtype != spec.resource_type:
            raise BadRequest(
                f"prefetch key '{spec.key}' holds a {rtype}, expected {spec.resource_type}",
                msg=Msg.INVALID_PREFETCH,
            )
        return [value]
    if rtype != "Bundle":
        raise BadRequest(
            f"prefetch key '{spec.key}' holds a {rtype}, expected a Bundle of {spec.resource_type}",
            msg=Msg.INVALID_PREFETCH,
        )
    entries = value.get("entry")
    if isinstance(entries, list) and len(entries) > max_entries:
        raise PayloadTooLarge(f"prefetch key '{spec.key}' has more than {max_entries} entries")
    if next_link(value) is not None:
        return None
    # one pass over the entries (big records have hundreds): the key's resources, and whether an
    # error outcome says the search was incomplete
    wanted = (spec.resource_type, *spec.includes)
    found: list[JSON] = []
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        rtype = resource.get("resourceType")
        if rtype in wanted:
            found.append(resource)
        elif rtype == "OperationOutcome" and has_error_outcome({"entry": [entry]}):
            return None
    return found


@dataclass(frozen=True, slots=True)
class Budget:
    """How the fallback may use the FHIR server for one hook call."""

    concurrency: int = 4  # queries in flight for one call (OI_CDS_FHIR_CONCURRENCY)
    best_effort_s: float = 1.5  # best-effort keys are given up after this (said on the card)


async def gather(
    request: HookRequest,
    client: FhirClient,
    keys: tuple[PrefetchKey, ...],
    may_have_oi: Callable[[list[JSON]], bool] | None = None,
    budget: Budget = Budget(),
) -> PatientData:
    prefetch = request.prefetch or {}
    server = request.fhirServer if client.usable(request.fhirServer) else None
    token, grants, refused = _authorization(request)
    found: dict[str, list[JSON]] = {}
    missing: list[str] = []
    unchecked: list[str] = []
    fetched: list[str] = []
    wanted: list[PrefetchKey] = []
    for spec in keys:
        resources = (
            _from_prefetch(spec, prefetch[spec.key], client.max_entries) if spec.key in prefetch else None
        )
        if resources is not None:
            found[spec.key] = resources
        elif server is None or refused:
            reason = refused or "not in prefetch and no usable FHIR server"
            (missing if spec.required else unchecked).append(f"{spec.what}: {reason}")
        elif not allows(grants, spec.resource_type, search=not spec.is_read):
            (missing if spec.required else unchecked).append(f"{spec.what}: outside the access token's scope")
        else:
            wanted.append(spec)
    if wanted and server is not None:
        # concurrently, required keys first, at most `concurrency` at a time for this call
        gate = asyncio.Semaphore(budget.concurrency)
        started = time.monotonic()
        wanted.sort(key=lambda spec: not spec.required)
        results = await asyncio.gather(
            *(
                _fetch_key(client, server, token, spec, request.context, gate, budget, started)
                for spec in wanted
            )
        )
        for spec, (resources, reason) in zip(wanted, results, strict=True):
            if resources is None:
                (missing if spec.required else unchecked).append(f"{spec.what}: {reason}")
            else:
                found[spec.key] = resources
                fetched.append(spec.key)
    if missing:
        raise PreconditionFailed("required FHIR data could not be obtained: " + "; ".join(missing))
    patients = found["patient"]
    if not patients:
        raise PreconditionFailed("the patient could not be obtained (prefetch 'patient' is null)")
    patient = patients[0]
    if patient.get("id") not in (None, request.context["patientId"]):
        raise BadRequest(
            "prefetch 'patient' is not the patient named by context.patientId", msg=Msg.OTHER_PATIENT
        )
    pid = str(request.context["patientId"])
    everything = [
        r
        for key in ("conditions", "observations", "medications", "medicationStatements")
        for r in found.get(key, [])
    ]
    if may_have_oi is not None and not may_have_oi(everything):
        # no Condition of anyone here is OI (the common chart open): nothing more is read
        return PatientData(patient, [], [], unchecked, fetched, without_oi=True)
    resources = owned(everything, pid)
    if server is not None and not refused and allows(grants, "Medication", search=False):
        resources += await _referenced_medications(
            client, server, token, resources, unchecked, budget.concurrency
        )
    care_plans = owned(found.get("carePlans", []), pid)
    orders = [
        r
        for r in [*resources, *owned(found.get("serviceRequests", []), pid)]
        if r.get("resourceType") in ACTIVE_ORDER_TYPES and r.get("status") in ACTIVE_ORDER_STATUS
    ]
    return PatientData(patient, resources, care_plans, unchecked, fetched, orders=orders)


def _authorization(request: HookRequest) -> tuple[str | None, dict[str, set[str]] | None, str | None]:
    """The token to send, the scopes it grants, and why it must not be used (None: it may)."""
    auth = request.fhirAuthorization
    if auth is None:
        return None, None, None
    if auth.expires_in is not None and auth.expires_in <= 0:
        return None, None, "the FHIR access token has expired"
    patient = str(auth.patient).removeprefix("Patient/") if auth.patient else None
    if patient is not None and patient != str(request.context["patientId"]):
        return None, None, "the FHIR access token is for another patient"
    return auth.access_token, granted(auth.scope), None


async def _fetch_key(
    client: FhirClient,
    server: str,
    token: str | None,
    spec: PrefetchKey,
    context: dict[str, Any],
    gate: asyncio.Semaphore,
    budget: Budget,
    started: float,
) -> tuple[list[JSON] | None, str]:
    """One key from the server: (resources, "") or (None, why not). Best-effort keys are given
    up when the budget is spent, so that the required ones still answer within the deadline."""
    try:
        async with gate:
            if spec.required:
                return await _query(client, server, token, spec, context), ""
            left = budget.best_effort_s - (time.monotonic() - started)
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                return await _query(client, server, token, spec, context), ""
    except TimeoutError:
        metrics.FHIR_FAILURES.labels("budget").inc()
        return None, "not obtained from the FHIR server in time"
    except FhirFetchError as exc:
        # The caller learns only that the data could not be had: which ports answer,
        # and how, is for the operator (metric and log), never for the 412 body.
        metrics.FHIR_FAILURES.labels(exc.reason).inc()
        log.info("FHIR fallback failed", extra={"fields": {"key": spec.key, "reason": exc.reason}})
        return None, "not obtainable from the FHIR server"


async def _query(
    client: FhirClient, server: str, token: str | None, spec: PrefetchKey, context: dict[str, Any]
) -> list[JSON]:
    path = render(spec.template, context)
    if not spec.is_read:
        return await _search(client, server, path, token, spec, context)
    resource = await client.get(server, path, token)
    if resource.get("resourceType") != spec.resource_type:
        raise FhirFetchError(f"the FHIR server returned a {resource.get('resourceType')} for {spec.what}")
    return [resource]


async def _search(
    client: FhirClient, server: str, path: str, token: str | None, spec: PrefetchKey, context: dict[str, Any]
) -> list[JSON]:
    try:
        return await client.search(server, path, token, spec.resource_type, *spec.includes)
    except FhirRefused:
        # the server refused the typed patient reference: ask with the bare id
        return await client.search(server, bare_id(path, context), token, spec.resource_type, *spec.includes)


MAX_MEDICATION_READS = 20


async def _referenced_medications(
    client: FhirClient,
    server: str,
    token: str | None,
    resources: list[JSON],
    unchecked: list[str],
    concurrency: int,
) -> list[JSON]:
    """Medications named by reference that neither prefetch nor the searches brought."""
    known = index_medications(resources)
    wanted = sorted({ref for r in resources if (ref := unresolved_reference(r, known))})
    gate = asyncio.Semaphore(concurrency)

    async def read(ref: str) -> JSON | None:
        try:
            async with gate:
                return await client.get(server, ref, token)
        except FhirFetchError as exc:
            metrics.FHIR_FAILURES.labels(exc.reason).inc()
            unchecked.append("a referenced Medication: not obtainable from the FHIR server")
            return None

    read_all = await asyncio.gather(*(read(ref) for ref in wanted[:MAX_MEDICATION_READS]))
    found = [m for m in read_all if m is not None and m.get("resourceType") == "Medication"]
    if len(wanted) > MAX_MEDICATION_READS:
        unchecked.append(f"more than {MAX_MEDICATION_READS} referenced Medications: the rest not read")
    return found
