"""PatientFacts: one patient's facts as the PlanDefinitions read them, with their support."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from services.plan_builder.dates import DateRange
from services.plan_builder.facts.base import NO_DETAIL, FactSpec, Missing
from services.plan_builder.types import Tri

if TYPE_CHECKING:
    from services.plan_builder.facts.conditions import Fracture


@dataclass(frozen=True)
class PatientFacts:
    """The values by fact name (the vocabulary's), and what supports them.

    The typed properties below are for the Python code that reads a fact (order checks, the
    try-it page, tests); the PlanDefinitions read ``vector()``, whatever facts the vocabulary has.
    """

    evaluated_on: date
    patient_ref: str | None
    specs: Mapping[str, FactSpec] = field(repr=False)
    values: Mapping[str, Any]
    details: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    missing: tuple[Missing, ...] = ()
    notes: tuple[str, ...] = ()
    gender: str | None = None
    birth_date: DateRange | None = None
    fractures: tuple[Fracture, ...] = ()
    _described: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def vector(self) -> dict[str, Any]:
        """The facts as the PlanDefinitions read them (%facts); None is FHIRPath's empty."""
        return dict(self.values)

    def describe(self, name: str) -> str:
        """A clinician-readable statement of one fact, for reasons and explanations (memoized:
        every recommendation that reads a fact states it)."""
        text = self._described.get(name)
        if text is None:
            text = self._described[name] = self.specs[name].describe(self)
        return text

    def detail(self, name: str) -> Mapping[str, Any]:
        return self.details.get(name, NO_DETAIL)

    def age_text(self) -> str:
        if self.age_low is None or self.age_high is None:
            return "age unknown (no birth date)"
        if self.age_low == self.age_high:
            return f"age {self.age_low} years"
        return f"age {self.age_low}-{self.age_high} years (partial birth date)"

    @property
    def missing_facts(self) -> bool:
        return any(m.fires_missing_facts for m in self.missing)

    @property
    def oi(self) -> bool:
        return bool(self.values.get("oi"))

    @property
    def oi_types(self) -> tuple[str, ...]:
        return tuple(self.detail("oi").get("types", ()))

    @property
    def severity(self) -> str | None:
        return self.values.get("severity")

    @property
    def severity_source(self) -> str | None:
        """ "explicit" (Condition.severity) or "type"."""
        return self.detail("severity").get("source")

    @property
    def age_low(self) -> int | None:
        return self.values.get("ageLow")

    @property
    def age_high(self) -> int | None:
        return self.values.get("ageHigh")

    @property
    def age_under_18(self) -> Tri:
        return self.values.get("ageUnder18")

    @property
    def skeletally_immature(self) -> Tri:
        return self.values.get("skeletallyImmature")

    @property
    def skeletal_maturity_source(self) -> str | None:
        """ "observed" or "age"."""
        return self.detail("skeletallyImmature").get("source")

    @property
    def maturity_age(self) -> int:
        return int(self.detail("skeletallyImmature").get("maturity_age", 0))

    @property
    def young_adult(self) -> Tri:
        return self.values.get("youngAdult")

    @property
    def recent_long_bone_fracture(self) -> Tri:
        return self.values.get("recentLongBoneFracture")

    @property
    def recurrent_long_bone_fractures(self) -> Tri:
        return self.values.get("recurrentLongBoneFractures")

    @property
    def recurrent_count(self) -> int:
        return int(self.detail("recurrentLongBoneFractures").get("count", 0))

    @property
    def long_bone_bowing(self) -> bool:
        return bool(self.values.get("longBoneBowing"))

    @property
    def spine_deformity(self) -> bool:
        return bool(self.values.get("spineDeformity"))

    @property
    def basilar_invagination(self) -> bool:
        return bool(self.values.get("basilarInvagination"))

    @property
    def vertebral_fracture(self) -> bool:
        return bool(self.values.get("vertebralFracture"))

    @property
    def functional_status(self) -> str | None:
        return self.values.get("functionalStatus")

    @property
    def active_bisphosphonate(self) -> Tri:
        return self.values.get("activeBisphosphonate")

    @property
    def medullary_canal_diameter_mm(self) -> float | None:
        return self.detail("boneSize").get("mm")

    @property
    def canal_by_site(self) -> tuple[tuple[str, float], ...]:
        return tuple(self.detail("boneSize").get("by_site", ()))

    @property
    def bone_size(self) -> str:
        return str(self.values.get("boneSize") or "unknown")
