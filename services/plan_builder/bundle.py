"""A Bundle holding one or many patients -> one group of resources per patient, in input order.

Resources are tied to their patient by ``subject``/``patient`` references written either
``Patient/<id>`` (relative or absolute) or as the Patient entry's ``fullUrl`` (``urn:uuid:``).
Problems confined to one patient stay with that patient; a resource that points to no
patient in the Bundle is reported on its own; only an unusable Bundle raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.plan_builder.errors import Msg, PlanInputError
from services.plan_builder.structural import READ_TYPES, SHARED_TYPES, validate_resource
from services.plan_builder.types import JSON

BUNDLE_TYPES = frozenset({"collection", "searchset", "transaction", "batch"})
_REF_PATTERNS: dict[str, re.Pattern[str]] = {}


@dataclass
class PatientGroup:
    position: int  # the Patient's entry index
    patient: JSON
    ref: str  # Patient/<id>, else the entry's fullUrl
    resources: list[JSON] = field(default_factory=list)
    problems: list[PlanInputError] = field(default_factory=list)


@dataclass
class SplitBundle:
    groups: list[PatientGroup]
    orphans: list[PlanInputError]


def normalize_ref(reference: str, resource_type: str) -> str:
    """'https://x/fhir/Patient/1/_history/2' -> 'Patient/1'; other forms unchanged."""
    pattern = _REF_PATTERNS.get(resource_type)
    if pattern is None:
        pattern = re.compile(rf"(?:^|/)({resource_type}/[A-Za-z0-9\-.]{{1,64}})(?:/_history/[^/]+)?\Z")
        _REF_PATTERNS[resource_type] = pattern
    match = pattern.search(reference)
    return match.group(1) if match else reference


def normalize_patient_ref(reference: str) -> str:
    return normalize_ref(reference, "Patient")


def split_bundle(doc: Any, validate: Callable[[JSON, str], JSON] = validate_resource) -> SplitBundle:
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        found = doc.get("resourceType") if isinstance(doc, dict) else type(doc).__name__
        raise PlanInputError(f"expected a FHIR Bundle, got {found!r}", msg=Msg.NOT_A_BUNDLE, code="structure")
    btype = doc.get("type")
    if btype is not None and btype not in BUNDLE_TYPES:
        raise PlanInputError(
            f"Bundle.type {btype!r} is not one of {', '.join(sorted(BUNDLE_TYPES))}",
            msg=Msg.BUNDLE_TYPE,
            resource_type="Bundle",
            path="Bundle.type",
            code="not-supported",
        )
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise PlanInputError(
            "Bundle.entry must be an array",
            msg=Msg.BUNDLE_ENTRY,
            resource_type="Bundle",
            path="Bundle.entry",
            code="structure",
        )

    groups: list[PatientGroup] = []
    by_ref: dict[str, PatientGroup] = {}
    orphans: list[PlanInputError] = []
    others: list[tuple[int, JSON]] = []
    shared: dict[str, JSON] = {}  # Medications by the names references use for them
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            orphans.append(
                PlanInputError(
                    f"{where} has no resource object", msg=Msg.BUNDLE_ENTRY, path=where, code="structure"
                )
            )
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        if resource.get("resourceType") in SHARED_TYPES:
            _index_shared(resource, full_url, i, shared, orphans, validate)
            continue
        if resource.get("resourceType") != "Patient":
            others.append((i, resource))
            continue
        rid = resource.get("id") if isinstance(resource.get("id"), str) else None
        ref = f"Patient/{rid}" if rid else full_url
        group = PatientGroup(i, resource, ref or f"{where}.resource")
        groups.append(group)
        try:
            validate(resource, where)
        except PlanInputError as exc:
            group.problems.append(exc)
        if ref is None:
            group.problems.append(
                PlanInputError(
                    "Patient has neither id nor fullUrl: nothing can refer to it",
                    msg=Msg.PATIENT_WITHOUT_ID,
                    resource_type="Patient",
                    path=where,
                )
            )
        for alias in filter(None, (ref, full_url, full_url and normalize_patient_ref(full_url))):
            if alias in by_ref and by_ref[alias] is not group:
                group.problems.append(
                    PlanInputError(
                        f"duplicate Patient {alias} in the Bundle",
                        msg=Msg.DUPLICATE_PATIENT,
                        resource_type="Patient",
                        path=where,
                    )
                )
            by_ref[alias] = group

    for i, resource in others:
        rtype = resource.get("resourceType")
        if rtype not in READ_TYPES:
            continue  # resource types the rules do not read are ignored
        where = f"Bundle.entry[{i}]"
        subject = resource.get("subject") or resource.get("patient")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        owner: PatientGroup | None = None
        if isinstance(reference, str):
            owner = by_ref.get(reference) or by_ref.get(normalize_patient_ref(reference))
        if owner is None:
            label = (
                f"{rtype}/{resource['id']}" if isinstance(resource.get("id"), str) else f"{where} ({rtype})"
            )
            target = f"{reference!r}" if reference else "no subject"
            orphans.append(
                PlanInputError(
                    f"{label} refers to {target}, which is not a Patient in this Bundle",
                    msg=Msg.NOT_THE_PATIENTS,
                    path=f"{where}.resource.subject",
                    code="not-found",
                )
            )
            continue
        try:
            owner.resources.append(validate(resource, where))
        except PlanInputError as exc:
            owner.problems.append(exc)
            continue
        medication = _medication_of(resource, shared)
        if medication is not None and not any(r is medication for r in owner.resources):
            owner.resources.append(medication)
    return SplitBundle(groups, orphans)


def _index_shared(
    resource: JSON,
    full_url: str | None,
    i: int,
    shared: dict[str, JSON],
    orphans: list[PlanInputError],
    validate: Callable[[JSON, str], JSON],
) -> None:
    try:
        validate(resource, f"Bundle.entry[{i}]")
    except PlanInputError as exc:
        orphans.append(exc)
        return
    rid = resource.get("id")
    for alias in (f"{resource['resourceType']}/{rid}" if isinstance(rid, str) else None, full_url):
        if alias:
            shared[alias] = resource


def _medication_of(resource: JSON, shared: dict[str, JSON]) -> JSON | None:
    ref = resource.get("medicationReference")
    reference = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(reference, str) or not shared:
        return None
    return shared.get(reference) or shared.get(normalize_ref(reference, "Medication"))
