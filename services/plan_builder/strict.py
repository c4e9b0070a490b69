"""Strict validation with the fhir.resources R4B models (the R4 proxy: 8.x has no plain R4).

Used by ``--strict``, the FHIR endpoints' strict mode and the tests; never on the hot path.
R4B models reject unknown elements, so the R4 elements R4B dropped are the only difference
we meet in practice; those resources fail here and the error names the element.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from services.plan_builder.errors import PlanInputError
from services.plan_builder.structural import validate_resource
from services.plan_builder.types import JSON


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def validate_strict(resource: JSON, where: str = "resource") -> JSON:
    validate_resource(resource, where)
    rtype = resource["resourceType"]
    try:
        model = _model(rtype)
    except (KeyError, ValueError) as exc:
        raise PlanInputError(
            f"unknown FHIR resource type {rtype!r}", resource_type=rtype, path=where
        ) from exc
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        raise PlanInputError(
            f"fails FHIR R4 validation: {first.get('msg')} ({exc.error_count()} problem(s))",
            resource_type=rtype,
            resource_id=resource.get("id"),
            path=f"{rtype}.{path}" if path else rtype,
        ) from exc
    return resource
