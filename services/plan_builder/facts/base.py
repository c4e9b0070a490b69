"""What every fact reader shares: the typed result it returns, its spec, and the read record.

A reader is a function ``Record -> FactValue``: it returns its value with the resources that
support it (evidence), the data-quality notes it found, and what the record leaves unknown
(missing). It never writes into shared state; the record memoizes each fact, so a reader may
ask for another fact by name (``record.fact("skeletallyImmature")``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from services.plan_builder import dates
from services.plan_builder.dates import DateRange
from services.plan_builder.settings import PlanSettings
from services.plan_builder.structural import check_fields, validate_resource
from services.plan_builder.terminology import Terminology
from services.plan_builder.types import JSON, Tri

if TYPE_CHECKING:
    from services.plan_builder.facts.conditions import ConditionRead, Fracture
    from services.plan_builder.facts.observations import Obs
    from services.plan_builder.facts.patient_facts import PatientFacts

NO_DETAIL: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Missing:
    """A fact the record does not settle, and which facts it leaves undecided."""

    fact: str
    text: str
    affects: tuple[str, ...]
    fires_missing_facts: bool = True


class FactValue(NamedTuple):
    """What a reader returns: the value the PlanDefinitions read (None: FHIRPath's empty).

    A NamedTuple, not a frozen dataclass: one per fact per patient on the hot path."""

    value: Any
    evidence: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    missing: tuple[Missing, ...] = ()
    detail: Mapping[str, Any] = NO_DETAIL  # what descriptions and other readers need besides it


# The answers most facts give for most patients, built once (a reader's fast path).
ABSENT = FactValue(False)
UNKNOWN = FactValue(None)


@dataclass(frozen=True, slots=True)
class ObservationRead:
    """An Observation a fact reads: the question's ValueSet, and the answers' (None: a length in mm)."""

    label: str  # what a site must map, in words
    question: str
    answers: str | None


@dataclass(frozen=True, slots=True)
class FactSpec:
    """One fact of the vocabulary the PlanDefinitions read as %facts.<name>."""

    name: str
    type: str  # "boolean", "boolean-or-unknown", "code", "integer"
    description: str  # what it means, in the contract's words
    reads: tuple[str, ...]  # the ValueSets it reads (concepts, never codes)
    reader: Callable[[Record], FactValue]
    describe: Callable[[PatientFacts], str]  # this patient's value, for reasons and explanations
    observation: ObservationRead | None = None
    without_oi: Any = None  # its value for a patient with no OI Condition (nothing else is read)
    settings: tuple[str, ...] = ()  # the PlanSettings thresholds it reads (for the rule book)


def undecided(value: Tri, fact: str, cause: str, text: str) -> tuple[Missing, ...]:
    """What a fact left undecided by partial dates says (it does not fire missing-facts)."""
    return () if value is not None else (Missing(cause, text, (fact,), fires_missing_facts=False),)


def dedupe(refs: Sequence[str | None]) -> tuple[str, ...]:
    """The references, each once, in order (None dropped). Few per fact: a list beats a dict."""
    out: list[str] = []
    for ref in refs:
        if ref and ref not in out:
            out.append(ref)
    return tuple(out)


def resource_ref(resource: JSON) -> str | None:
    rid = resource.get("id")
    return f"{resource['resourceType']}/{rid}" if rid else None


def tri_and(*values: Tri) -> Tri:
    if any(v is False for v in values):
        return False
    if all(v is True for v in values):
        return True
    return None


def tri_any(values: Iterable[Tri]) -> Tri:
    result: Tri = False
    for v in values:
        if v is True:
            return True
        if v is None:
            result = None
    return result


@dataclass(slots=True)
class Record:
    """One patient's resources as read once (validated as read when asked), and the facts so far."""

    at: date
    settings: PlanSettings
    terminology: Terminology
    validate: bool
    specs: Mapping[str, FactSpec]
    patient: JSON
    patient_ref: str | None
    birth: DateRange | None = None
    age_low: int | None = None
    age_high: int | None = None
    by_type: dict[str, list[JSON]] = field(default_factory=dict)
    conditions: list[ConditionRead] = field(default_factory=list)
    present: dict[str, list[ConditionRead]] = field(default_factory=dict)  # by ValueSet
    fractures: list[Fracture] = field(default_factory=list)
    observations: dict[str, list[Obs]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # found while reading resources
    read: dict[str, FactValue] = field(default_factory=dict)  # the facts read so far, by name

    def fact(self, name: str) -> FactValue:
        """A fact's value, read once."""
        found = self.read.get(name)
        if found is None:
            found = self.read[name] = self.specs[name].reader(self)
        return found

    def peek(self, resource: JSON, *fields: str) -> None:
        """Validate the fields that decide whether a resource matters (lazy validation)."""
        if self.validate:
            check_fields(resource, *fields)

    def check(self, resource: JSON) -> None:
        """Validate a resource the rules are about to read in full."""
        if self.validate:
            validate_resource(resource)

    def dated(
        self, ref: str | None, label: str, text: str | None, parse: Any, notes: list[str] | None = None
    ) -> DateRange | None:
        """Parse a date; one after the evaluation date is a data error (ignored, noted)."""
        if not text:
            return None
        value: DateRange = parse(text)
        if value.start > self.at:
            (self.notes if notes is None else notes).append(
                f"{ref or 'a resource'}: {label} {text} is after the evaluation date; ignored"
            )
            return None
        if value.end > self.at:
            value = DateRange(value.start, self.at)
        return value

    def below(self, threshold: int) -> Tri:
        return dates.below(self.age_low, self.age_high, threshold)

    def cited(self) -> tuple[str, ...]:
        """The Patient as the evidence of a fact read from it."""
        return (self.patient_ref,) if self.patient_ref else ()
