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
    keys: tuple[str, ...] = ()  # the recommendations of a CarePlan
    missing: tuple[str, ...] = ()  # facts the record does not settle (an OI patient's gaps)
    withheld: tuple[str, ...] = ()  # recommendations undecided for want of them


@dataclass
class Summary:
    read: int = 0
    planned: int = 0
    without_oi: int = 0
    errors: int = 0
    orphans: int = 0
    recommendations: dict[str, int] = field(default_factory=dict)  # OI patients per recommendation
    missing: dict[str, int] = field(default_factory=dict)  # OI patients per fact not settled
    gaps: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        if outcome.kind == "orphan":
            self.orphans += 1
            return
        self.read += 1
        if outcome.kind == "careplan":
            self.planned += 1
            for key in outcome.keys:
                self.recommendations[key] = self.recommendations.get(key, 0) + 1
            for fact in outcome.missing:
                self.missing[fact] = self.missing.get(fact, 0) + 1
            if outcome.missing:
                self.gaps.append((outcome.patient_ref or "", outcome.missing, outcome.withheld))
        elif outcome.kind == "not-oi":
            self.without_oi += 1
        else:
            self.errors += 1

    def merge(self, other: Summary) -> None:
        """Another part's counts (a partition of a distributed run) into these."""
        self.read += other.read
        self.planned += other.planned
        self.without_oi += other.without_oi
        self.errors += other.errors
        self.orphans += other.orphans
        for mine, theirs in ((self.recommendations, other.recommendations), (self.missing, other.missing)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.gaps.extend(other.gaps)

    def counts(self) -> JSON:
        return {
            "patients": self.read,
            "planned": self.planned,
            "withoutOI": self.without_oi,
            "withErrors": self.errors,
            "resourcesWithoutAPatient": self.orphans,
            "recommendations": dict(sorted(self.recommendations.items())),
            "missingFacts": dict(sorted(self.missing.items())),
        }

    def line(self) -> str:
        text = (
            f"patients read: {self.read}, planned: {self.planned}, without OI: {self.without_oi}, "
            f"with errors: {self.errors}"
        )
        if self.orphans:
            text += f", resources without a patient: {self.orphans}"
        return text


def patient_error(ref: str, issues: list[JSON]) -> Outcome:
    """One patient's errors (issues as PlanInputError.to_issue gives them) as its outcome."""
    named = [{**issue, "diagnostics": f"{ref}: {issue['diagnostics']}"} for issue in issues]
    return Outcome("error", ref, operation_outcome(named))


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
        return patient_error(group.ref, [p.to_issue() for p in group.problems])
    # Most of a population has no OI Condition: its records never reach the rules (the planner
    # answers a patient with no resources exactly as one whose Conditions cannot be OI).
    resources = group.resources if planner.may_have_oi(group.resources) else []
    try:
        result = planner.plan(group.patient, resources, at, patient_ref=group.ref)
    except PlanInputError as exc:
        return patient_error(group.ref, [exc.to_issue()])
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
    # what the record does not settle: the causes the facts name (a birth date, a severity) and
    # every other fact the rules read as unknown (an ambulatory status not recorded)
    covered = {name for m in result.facts.missing for name in m.affects}
    unknown = [name for name, value in result.facts.vector().items() if value is None and name not in covered]
    missing = tuple(dict.fromkeys([*(m.fact for m in result.facts.missing), *unknown]))
    withheld = tuple(w.key for w in result.withheld)
    return Outcome("careplan", group.ref, result.careplan, result.keys, missing, withheld)


def orphan_outcome(problem: PlanInputError | JSON) -> Outcome:
    """A line no patient owns (its problem, or that problem's issue from another process)."""
    issue = problem.to_issue() if isinstance(problem, PlanInputError) else problem
    return Outcome("orphan", None, operation_outcome([issue]))


def _outcomes(split: SplitBundle, planner: Planner, at: date, strict: bool) -> Iterator[Outcome]:
    for group in split.groups:
        yield plan_group(group, planner, at, strict)
    for orphan in split.orphans:
        yield orphan_outcome(orphan)
