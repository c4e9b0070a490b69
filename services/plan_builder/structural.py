"""Structural validation: cheap, always on, for every field the rules read.

Messages name the resource and the field, never the offending value: a birth date or an
identifier must not come back in an error body or a log line.

It checks the JSON shape, ``resourceType``, and the type and format of each field the
definitions read (dates, codings, references, quantities) and names the resource and field in
its error. Unknown fields are tolerated: this is not full FHIR validation (see strict.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from services.plan_builder import dates
from services.plan_builder.errors import Msg, PlanInputError
from services.plan_builder.types import JSON

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
Check = Callable[[Any], str | None]  # returns a problem, or None when the value is fine


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _code(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty code string"
    return None


def _date(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a date string"
    try:
        dates.parse_date(value)
    except ValueError:
        return "is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)"
    return None


def _datetime(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a dateTime string"
    try:
        dates.parse_datetime(value)
    except ValueError:
        return "is not a FHIR dateTime"
    return None


def _instant(value: Any) -> str | None:
    if not isinstance(value, str) or not dates.is_instant(value):
        return "is not a FHIR instant (date, time and time zone)"
    return _datetime(value)


_CODING_STRINGS = ("system", "code", "display")


def _coding(value: Any) -> str | None:
    if type(value) is not dict:
        return "must be a Coding object"
    for key in _CODING_STRINGS:
        if key in value and type(value[key]) is not str:
            return f"Coding.{key} must be a string"
    return None


def _codeable(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a CodeableConcept object"
    coding = value.get("coding", [])
    if not isinstance(coding, list):
        return "coding must be an array"
    for i, c in enumerate(coding):
        # the common case inline (every Condition and Observation has codings)
        if (
            type(c) is not dict
            or type(c.get("system", "")) is not str
            or type(c.get("code", "")) is not str
            or type(c.get("display", "")) is not str
        ):
            return f"coding[{i}]: {_coding(c)}"
    if "text" in value and not isinstance(value["text"], str):
        return "text must be a string"
    return None


def _reference(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a Reference object"
    for key in ("reference", "display"):
        if key in value and not isinstance(value[key], str):
            return f"Reference.{key} must be a string"
    return None


def _quantity(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a Quantity object"
    number = value.get("value")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
        return "value must be a number"
    for key in ("unit", "code", "system"):
        if key in value and not isinstance(value[key], str):
            return f"{key} must be a string"
    return None


def _period(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a Period object"
    for key in ("start", "end"):
        if key in value:
            problem = _datetime(value[key])
            if problem:
                return f"{key}: {problem}"
    return None


def _dosage(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a Dosage object"
    if "route" in value:
        return _codeable(value["route"])
    return None


def _ingredient(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an ingredient object"
    if "itemCodeableConcept" in value:
        return _codeable(value["itemCodeableConcept"])
    return None


def _resource_object(value: Any) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return "must be a resource object"
    return None


def _list(check: Check) -> Check:
    def run(value: Any) -> str | None:
        if not isinstance(value, list):
            return "must be an array"
        for i, item in enumerate(value):
            problem = check(item)
            if problem:
                return f"[{i}]: {problem}"
        return None

    return run


_SUBJECT = {"subject": _reference, "patient": _reference}
SCHEMAS: dict[str, dict[str, Check]] = {
    "Patient": {"birthDate": _date, "gender": _code},
    "Condition": {
        **_SUBJECT,
        "code": _codeable,
        "severity": _codeable,
        "clinicalStatus": _codeable,
        "verificationStatus": _codeable,
        "onsetDateTime": _datetime,
        "onsetPeriod": _period,
        "onsetAge": _quantity,
        "recordedDate": _datetime,
        "bodySite": _list(_codeable),
    },
    "Observation": {
        **_SUBJECT,
        "status": _code,
        "code": _codeable,
        "effectiveDateTime": _datetime,
        "effectivePeriod": _period,
        "issued": _instant,
        "valueCodeableConcept": _codeable,
        "valueQuantity": _quantity,
        "valueString": _string,
        "valueBoolean": _boolean,
        "bodySite": _codeable,
    },
    "MedicationRequest": {
        **_SUBJECT,
        "status": _code,
        "intent": _code,
        "medicationCodeableConcept": _codeable,
        "medicationReference": _reference,
        "contained": _list(_resource_object),
        "authoredOn": _datetime,
        "dosageInstruction": _list(_dosage),
    },
    "MedicationStatement": {
        **_SUBJECT,
        "status": _code,
        "medicationCodeableConcept": _codeable,
        "medicationReference": _reference,
        "contained": _list(_resource_object),
        "effectiveDateTime": _datetime,
        "effectivePeriod": _period,
    },
    "Medication": {"code": _codeable, "ingredient": _list(_ingredient)},
    "Procedure": {**_SUBJECT, "status": _code, "code": _codeable, "performedDateTime": _datetime},
    "ServiceRequest": {
        **_SUBJECT,
        "status": _code,
        "intent": _code,
        "code": _codeable,
        "bodySite": _list(_codeable),
    },
}
_NO_SCHEMA: dict[str, Check] = {}
# Medications belong to no patient: they are read through the references that name them.
SHARED_TYPES = frozenset({"Medication"})
READ_TYPES = frozenset(SCHEMAS) - SHARED_TYPES


def check_fields(resource: JSON, *fields: str) -> None:
    """Validate only the named fields (the ones about to be read) of a resource."""
    rtype = resource["resourceType"]
    schema = SCHEMAS.get(rtype, {})
    for field in fields:
        if field in resource and field in schema:
            problem = schema[field](resource[field])
            if problem:
                raise PlanInputError(
                    problem,
                    msg=Msg.INVALID_FIELD,
                    resource_type=rtype,
                    resource_id=resource.get("id"),
                    path=f"{rtype}.{field}",
                )


def validate_resource(resource: Any, where: str = "resource") -> JSON:
    """Check one resource; return it, or raise PlanInputError naming the resource and field."""
    if not isinstance(resource, dict):
        raise PlanInputError(f"{where} is not a JSON object", msg=Msg.NOT_AN_OBJECT, code="structure")
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise PlanInputError(f"{where} has no resourceType", msg=Msg.NO_RESOURCE_TYPE, code="structure")
    rid = resource.get("id")
    if rid is not None and (not isinstance(rid, str) or not _ID.fullmatch(rid)):
        raise PlanInputError(
            "is not a valid FHIR id", msg=Msg.INVALID_ID, resource_type=rtype, path=f"{rtype}.id"
        )
    schema = SCHEMAS.get(rtype, _NO_SCHEMA)
    for field, value in resource.items():  # a resource holds fewer fields than its schema
        check = schema.get(field)
        if check is not None:
            problem = check(value)
            if problem:
                raise PlanInputError(
                    problem,
                    msg=Msg.INVALID_FIELD,
                    resource_type=rtype,
                    resource_id=rid,
                    path=f"{rtype}.{field}",
                )
    contained = resource.get("contained")
    for i, item in enumerate(contained if isinstance(contained, list) else ()):
        if isinstance(item, dict) and item.get("resourceType") in SCHEMAS:
            validate_resource(item, f"{rtype}.contained[{i}]")
    return resource
