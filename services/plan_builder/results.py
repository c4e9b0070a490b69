"""What the plan builder answers: recommendations, what it withholds, and the plan as a whole."""

from __future__ import annotations

from dataclasses import dataclass

from services.plan_builder.facts import PatientFacts
from services.plan_builder.types import JSON

URGENT_INDICATORS = frozenset({"warning", "critical"})


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One applicable recommendation with its explanation (which facts, which resources)."""

    key: str
    coding: JSON
    title: str
    description: str
    citation: str
    indicator: str | None  # set when the key has a card of its own
    reasons: tuple[str, ...]
    evidence: tuple[str, ...]
    activity_definition: str | None
    kind: str | None


@dataclass(frozen=True, slots=True)
class Withheld:
    """A recommendation the record cannot decide, and the unknown facts that stop it."""

    key: str
    title: str
    unknown: tuple[str, ...]


@dataclass(frozen=True)
class PlanResult:
    facts: PatientFacts
    recommendations: tuple[Recommendation, ...]
    withheld: tuple[Withheld, ...]
    notes: tuple[str, ...]
    careplan: JSON | None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.recommendations)

    @property
    def urgent(self) -> tuple[Recommendation, ...]:
        """The recommendations whose cards the knowledge marks warning or critical (today:
        fracture care, basilar invagination, spinal fracture): never silenced."""
        return tuple(r for r in self.recommendations if r.indicator in URGENT_INDICATORS)


@dataclass(frozen=True, slots=True)
class PlanOnFile:
    """The patient's CarePlan from this service on file, and whether it still says what applies."""

    resource: JSON | None
    current: bool
