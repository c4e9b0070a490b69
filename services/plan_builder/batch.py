"""Plan every patient of a Bundle, one outcome per patient in input order (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from services.plan_builder.bundle import PatientGroup, SplitBundle, split_bundle
from services.plan_builder.errors import PlanInputError, operation_outcome
from services.plan_builder.planner import Planner
from services.plan_builder.structural import validate_resource
from services.plan_builder.types import JSON

Kind = Literal["careplan", "not-oi", "error", "orphan"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    patient_ref: str | None
    resource: JSON  # a CarePlan, or an OperationOutcome


@dataclass
class Summary:
    read: int = 0
    planned: int = 0
    without_oi: int = 0
    errors: int = 0
    orphans: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        if outcome.kind == "orphan":
            self.orphans += 1
            return
        self.read += 1
        if outcome.kind == "careplan":
            self.planned += 1
        elif outcome.kind == "not-oi":
            self.without_oi += 1
        else:
            self.errors += 1

    def line(self) -> str:
        text = (
            f"patients read: {self.read}, planned: {self.planned}, without OI: {self.without_oi}, "
            f"with errors: {self.errors}"
        )
        if self.orphans:
            text += f", resources without a patient: {self.orphans}"
        return text


def _patient_outcome(ref: str, problems: list[PlanInputError]) -> JSON:
    issues = []
    for problem in problems:
        issue = problem.to_issue()
        issue["diagnostics"] = f"{ref}: {issue['diagnostics']}"
        issues.append(issue)
    return operation_outcome(issues)


def plan_bundle(doc: Any, planner: Planner, at: date, strict: bool = False) -> Iterator[Outcome]:
    """Outcomes in input order, produced lazily.

    Raises PlanInputError at once (not on first iteration) when the document as a whole is
    unusable, so callers can refuse it before writing any output.
    """
    validate = validate_resource
    if strict:
        from services.plan_builder.strict import validate_strict

        validate = validate_strict
    return _outcomes(split_bundle(doc, validate), planner, at, strict)


def plan_group(group: PatientGroup, planner: Planner, at: date, strict: bool = False) -> Outcome:
    """One patient's outcome: its CarePlan, an information outcome (no OI), or its errors."""
    if group.problems:
        return Outcome("error", group.ref, _patient_outcome(group.ref, group.problems))
    try:
        result = planner.plan(group.patient, group.resources, at, patient_ref=group.ref)
    except PlanInputError as exc:
        return Outcome("error", group.ref, _patient_outcome(group.ref, [exc]))
    if result.careplan is None:
        info = {
            "severity": "information",
            "code": "informational",
            "diagnostics": f"{group.ref}: no osteogenesis imperfecta diagnosis; no CarePlan",
        }
        return Outcome("not-oi", group.ref, operation_outcome([info]))
    if strict:
        from services.plan_builder.strict import validate_strict

        validate_strict(result.careplan, "the produced CarePlan")
    return Outcome("careplan", group.ref, result.careplan)


def orphan_outcome(problem: PlanInputError) -> Outcome:
    return Outcome("orphan", None, operation_outcome([problem.to_issue()]))


def _outcomes(split: SplitBundle, planner: Planner, at: date, strict: bool) -> Iterator[Outcome]:
    for group in split.groups:
        yield plan_group(group, planner, at, strict)
    for orphan in split.orphans:
        yield orphan_outcome(orphan)
