"""The one exception family of the plan builder (PlanError), mapped to responses by each face.

- PlanInputError: input that is not usable FHIR for planning (a 4xx, or a per-patient outcome);
- KnowledgeError: knowledge artifacts or a site directory the service must not start on.

Every PlanInputError carries a stable message code (``Msg``, as HAPI FHIR's ``Msg.code``):
integrations, logs and tests match on the code, never on the wording, which may improve.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from services.plan_builder.canonical import MESSAGE_SYSTEM
from services.plan_builder.types import JSON


class Msg(StrEnum):
    """Stable codes of the plan builder's input errors. Never renumber; add at the end."""

    NOT_JSON = "OICDS-P101"  # a line or document is not JSON
    NOT_AN_OBJECT = "OICDS-P102"  # JSON, but not an object where a resource belongs
    NESTED_TOO_DEEPLY = "OICDS-P103"
    NO_RESOURCE_TYPE = "OICDS-P104"
    INVALID_ID = "OICDS-P110"
    INVALID_FIELD = "OICDS-P111"  # a field the rules read has the wrong shape
    NOT_VALID_R4 = "OICDS-P112"  # fails fhir.resources validation (strict)
    UNKNOWN_RESOURCE_TYPE = "OICDS-P113"  # strict: no such FHIR R4 resource type
    NOT_A_BUNDLE = "OICDS-P120"
    BUNDLE_TYPE = "OICDS-P121"
    BUNDLE_ENTRY = "OICDS-P122"  # Bundle.entry not an array, or an entry without a resource
    PATIENT_WITHOUT_ID = "OICDS-P130"
    DUPLICATE_PATIENT = "OICDS-P131"
    NOT_THE_PATIENTS = "OICDS-P132"  # a resource whose subject is no Patient of the input
    MODIFIER_EXTENSION = "OICDS-P140"  # a Patient with a modifierExtension cannot be planned


class PlanError(Exception):
    """The root of every error the plan builder raises."""


class KnowledgeError(PlanError, RuntimeError):
    """The knowledge artifacts (or a site's maps) are inconsistent: the service must not start."""


class PlanInputError(PlanError, ValueError):
    """Input that is not usable FHIR for planning; says which resource and field."""

    def __init__(
        self,
        message: str,
        *,
        msg: Msg,
        resource_type: str | None = None,
        resource_id: str | None = None,
        path: str | None = None,
        code: str = "invalid",
    ) -> None:
        self.message = message
        self.msg = msg
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.path = path
        self.code = code
        self.context: str | None = None  # what part of a request it was found in (see reading)
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.resource_type or "input"
        if self.resource_id:
            where += f"/{self.resource_id}"
        if self.path:
            where += f" {self.path}"
        return f"{where}: {self.message}"

    def to_issue(self) -> JSON:
        issue: JSON = {
            "severity": "error",
            "code": self.code,
            "details": message_details(self.msg),
            "diagnostics": self.describe(),
        }
        if self.path:
            issue["expression"] = [self.path]
        return issue


def message_details(msg: StrEnum) -> JSON:
    """OperationOutcome.issue.details for a stable message code."""
    return {"coding": [{"system": MESSAGE_SYSTEM, "code": msg.value, "display": msg.name.lower()}]}


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Say which part of a request a PlanInputError was found in ("draft order is not usable
    FHIR"): the face that maps the error to a response puts it first."""
    try:
        yield
    except PlanInputError as exc:
        exc.context = exc.context or what
        raise


def first_problem(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(where, what) of the first of pydantic's errors: the one every face reports."""
    first = errors[0] if errors else {}
    return ".".join(str(p) for p in first.get("loc", ())), str(first.get("msg", "invalid"))


def operation_outcome(issues: list[JSON]) -> JSON:
    return {"resourceType": "OperationOutcome", "issue": issues}
