"""Strict validation with the fhir.resources R4B models (the R4 proxy: 8.x has no plain R4).

Used by ``--strict``, the FHIR endpoints' strict mode and the tests; never on the hot path.
The models reject unknown elements and value[x] types. Cross-version extensions
(``http://hl7.org/fhir/<version>/StructureDefinition/extension-...``, which carry elements of
other FHIR versions, sometimes with value types R4 lacks) are stripped from the copy that is
validated, so a resource is not rejected for them; the resource itself is left unchanged.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import ValidationError

from services.plan_builder.errors import Msg, PlanInputError, first_problem
from services.plan_builder.structural import validate_resource
from services.plan_builder.types import JSON


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


_CROSS_VERSION = re.compile(r"^http://hl7\.org/fhir/\d+\.\d+/StructureDefinition/extension-")


def strip_cross_version_extensions(node: Any) -> Any:
    """A copy without cross-version extensions (at any depth)."""
    if isinstance(node, list):
        return [strip_cross_version_extensions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("extension", "modifierExtension") and isinstance(value, list):
            value = [
                e for e in value if not (isinstance(e, dict) and _CROSS_VERSION.match(str(e.get("url", ""))))
            ]
            if not value:
                continue
        out[key] = strip_cross_version_extensions(value)
    return out


def validate_strict(resource: JSON, where: str = "resource") -> JSON:
    validate_resource(resource, where)
    rtype = resource["resourceType"]
    try:
        model = _model(rtype)
    except (KeyError, ValueError) as exc:
        raise PlanInputError(
            f"unknown FHIR resource type {rtype!r}",
            msg=Msg.UNKNOWN_RESOURCE_TYPE,
            resource_type=rtype,
            path=where,
        ) from exc
    try:
        model.model_validate(strip_cross_version_extensions(resource))
    except ValidationError as exc:
        path, what = first_problem(exc.errors())
        raise PlanInputError(
            f"fails FHIR R4 validation: {what} ({exc.error_count()} problem(s))",
            msg=Msg.NOT_VALID_R4,
            resource_type=rtype,
            resource_id=resource.get("id"),
            path=f"{rtype}.{path}" if path else rtype,
        ) from exc
    return resource
