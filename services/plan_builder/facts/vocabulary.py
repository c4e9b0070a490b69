"""The fact vocabulary: every name the PlanDefinitions may read as %facts.<name>, in one place.

Each FactSpec says what the fact means (the contract's definition, shortened), its type, the
ValueSets it reads, the reader that works it out and how it is stated to a clinician. Adding a
fact is one spec here plus its reader (and a row in tests/plan_builder/test_fact_vocabulary.py);
the knowledge loader, the prefetch query, the site checks and the explanations follow from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from types import MappingProxyType

from services.plan_builder.facts import conditions as c
from services.plan_builder.facts import medication_use as m
from services.plan_builder.facts import observations as o
from services.plan_builder.facts import patient as p
from services.plan_builder.facts.base import FactSpec, FactValue, ObservationRead, Record
from services.plan_builder.facts.patient_facts import PatientFacts
from services.plan_builder.site import ObservationFact

ORDER_FACT_NAMES = frozenset({"drugGroup", "rodType", "boneSize"})  # %order.<name> (orders.py)


def _finding(label: str, name: str, f: PatientFacts) -> str:
    return f"{label} " + ("present" if f.values.get(name) else "absent")


def _describe_severity(f: PatientFacts) -> str:
    if f.severity is None:
        return "severity unknown"
    source = "explicit Condition.severity" if f.severity_source == "explicit" else "from OI type"
    return f"severity {f.severity} ({source})"


def _describe_maturity(f: PatientFacts) -> str:
    if f.skeletally_immature is None:
        return "skeletal maturity unknown"
    state = "skeletally immature" if f.skeletally_immature else "skeletally mature"
    if f.skeletal_maturity_source == "observed":
        return f"{state} (observed)"
    return f"{state} ({f.age_text()}; site threshold {f.maturity_age} for {f.gender or 'unknown'} sex)"


def _describe_young_adult(f: PatientFacts) -> str:
    state = {True: "young adult", False: "not a young adult", None: "young-adult status unknown"}
    return f"{state[f.young_adult]} ({_describe_maturity(f)}, {f.age_text()})"


def _describe_recent(f: PatientFacts) -> str:
    if f.recent_long_bone_fracture is None:
        return "a long-bone fracture whose partial onset date may fall in the recent window"
    if not f.recent_long_bone_fracture:
        return "no recent long-bone fracture"
    cited = f.evidence.get("recentLongBoneFracture", ())
    listed = ", ".join(f"{x.bone} (onset {x.onset or 'not recorded'})" for x in f.fractures if x.ref in cited)
    return "recent long-bone fracture: " + (listed or "recorded")


def _describe_recurrent(f: PatientFacts) -> str:
    if f.recurrent_long_bone_fractures is None:
        return "long-bone fracture count in the window undecided (partial onset dates)"
    return f"{f.recurrent_count} long-bone fracture(s) in the recurrence window"


def _describe_bone_size(f: PatientFacts) -> str:
    if f.medullary_canal_diameter_mm is None:
        return "bone size not measured"
    relation = "below" if f.bone_size == "small" else "at or above"
    return f"medullary canal {f.medullary_canal_diameter_mm:g} mm, {relation} the smallest telescoping rod"


_BISPHOSPHONATE = {
    True: "on an active bisphosphonate",
    False: "no active bisphosphonate",
    None: "bisphosphonate status undecided (partial dates)",
}


def _read_missing_facts(record: Record) -> FactValue:
    """Any missing fact that fires missing-facts (the contract's list); read last (the
    vocabulary orders it so), when every other fact has been read."""
    fires = any(m.fires_missing_facts for v in record.read.values() for m in v.missing)
    return FactValue(fires, (record.patient_ref,) if fires and record.patient_ref else ())


def _finding_spec(name: str, value_set: str, label: str, description: str) -> FactSpec:
    return FactSpec(
        name,
        "boolean",
        description,
        (value_set,),
        c.finding(value_set),
        lambda f: _finding(label, name, f),
        without_oi=False,
    )


MATURITY = ("maturity_age_female", "maturity_age_male", "maturity_age_other")
AGE = "Patient.birthDate: age in whole years at the evaluation date (a partial date gives a range)"
SPECS: tuple[FactSpec, ...] = (
    FactSpec(
        "oi",
        "boolean",
        "An OI Condition (any type) that is a present finding, verification absent or confirmed.",
        (c.VS_OI,),
        c.read_oi,
        lambda f: "osteogenesis imperfecta" + (f" ({', '.join(f.oi_types)})" if f.oi_types else ""),
        without_oi=False,
    ),
    FactSpec(
        "severity",
        "code",
        "mild | moderate | severe: an explicit Condition.severity on an OI Condition wins, else "
        "from the OI type; the most severe of several; empty when unknown.",
        (c.VS_OI, c.VS_SEVERITY),
        c.read_severity,
        _describe_severity,
    ),
    FactSpec("ageLow", "integer", AGE + "; the lower bound.", (), p.read_age_low, lambda f: f.age_text()),
    FactSpec("ageHigh", "integer", AGE + "; the upper bound.", (), p.read_age_high, lambda f: f.age_text()),
    FactSpec(
        "ageUnder18",
        "boolean-or-unknown",
        "Age below 18; unknown when a partial birth date straddles 18 or there is none.",
        (),
        p.read_age_under_18,
        lambda f: f.age_text(),
    ),
    FactSpec(
        "skeletallyImmature",
        "boolean-or-unknown",
        "The latest final skeletal-maturity finding, else age below the site's maturity age for the sex.",
        (o.VS_MATURITY, o.VS_MATURITY_VALUE),
        p.read_skeletally_immature,
        _describe_maturity,
        ObservationRead("skeletal maturity (observed; else from age)", o.VS_MATURITY, o.VS_MATURITY_VALUE),
        settings=MATURITY,
    ),
    FactSpec(
        "youngAdult",
        "boolean-or-unknown",
        "Skeletally mature and age below the site's young-adult limit (default 30).",
        (o.VS_MATURITY, o.VS_MATURITY_VALUE),
        p.read_young_adult,
        _describe_young_adult,
        settings=(*MATURITY, "young_adult_age_limit"),
    ),
    FactSpec(
        "recentLongBoneFracture",
        "boolean-or-unknown",
        "A present long-bone fracture with onset within the site's recent window (default 42 "
        "days), or with no onset at all.",
        (c.VS_LONG_BONE_FRACTURE,),
        c.read_recent_fracture,
        _describe_recent,
        without_oi=False,
        settings=("recent_fracture_days",),
    ),
    FactSpec(
        "recurrentLongBoneFractures",
        "boolean-or-unknown",
        "At least N counted long-bone fractures (any clinical status) with onset in the last 12 "
        "months (N a site setting, default 2).",
        (c.VS_LONG_BONE_FRACTURE,),
        c.read_recurrent_fractures,
        _describe_recurrent,
        without_oi=False,
        settings=("recurrent_fracture_count", "recurrent_window_months"),
    ),
    _finding_spec(
        "longBoneBowing",
        "long-bone-bowing",
        "long-bone bowing/deformity",
        "A present long-bone bowing or deformity Condition.",
    ),
    _finding_spec(
        "spineDeformity",
        "spine-deformity",
        "scoliosis/kyphoscoliosis",
        "A present scoliosis or kyphoscoliosis.",
    ),
    _finding_spec(
        "basilarInvagination",
        "basilar-invagination",
        "basilar invagination",
        "A present basilar invagination (or impression).",
    ),
    _finding_spec(
        "vertebralFracture", "vertebral-fracture", "vertebral fracture", "A present vertebral fracture."
    ),
    FactSpec(
        "functionalStatus",
        "code",
        "independent | with-aids | wheelchair | non-ambulatory: the latest ambulatory status no "
        "older than the site's window (default 24 months); empty when unknown.",
        (o.VS_AMBULATORY, o.VS_AMBULATORY_VALUE),
        o.read_functional_status,
        lambda f: f"functional status {f.functional_status or 'unknown'}",
        ObservationRead("functional status (ambulatory status)", o.VS_AMBULATORY, o.VS_AMBULATORY_VALUE),
        settings=("functional_status_max_age_months",),
    ),
    FactSpec(
        "activeBisphosphonate",
        "boolean-or-unknown",
        "A bisphosphonate MedicationRequest active or on-hold, a MedicationStatement active, or "
        "one completed within the site's window (default 6 months).",
        (m.VS_BISPHOSPHONATE,),
        m.read_active_bisphosphonate,
        lambda f: _BISPHOSPHONATE[f.active_bisphosphonate],
        without_oi=False,
        settings=("bisphosphonate_completed_window_months",),
    ),
    FactSpec(
        "boneSize",
        "code",
        "small | fits | unknown: the smallest of the latest medullary canal diameters per bone "
        "against the site's smallest telescoping rod (default 3.2 mm).",
        (o.VS_CANAL,),
        o.read_bone_size,
        _describe_bone_size,
        ObservationRead("bone size (medullary canal diameter)", o.VS_CANAL, None),
        without_oi="unknown",
        settings=("smallest_telescoping_rod_mm",),
    ),
    FactSpec(
        "missingFacts",
        "boolean",
        "Severity unknown, no birth date, or a partial birth date straddling 18, the "
        "skeletal-maturity age or the young-adult limit.",
        (),
        _read_missing_facts,
        lambda f: "missing: " + "; ".join(x.text for x in f.missing if x.fires_missing_facts),
        without_oi=False,
    ),
)


class Vocabulary:
    """The specs by name, in reading order (missingFacts last: it reads the others)."""

    def __init__(self, specs: Iterable[FactSpec]) -> None:
        ordered = sorted(specs, key=lambda s: s.name == "missingFacts")
        self.specs: Mapping[str, FactSpec] = MappingProxyType({s.name: s for s in ordered})
        if len(self.specs) != len(ordered):
            raise ValueError("two fact specs share a name")
        self.names = frozenset(self.specs)
        self.observation_reads = tuple(s.observation for s in ordered if s.observation is not None)
        self.observation_facts = tuple(
            ObservationFact(s.observation.label, s.observation.question, s.observation.answers, s.name)
            for s in ordered
            if s.observation is not None
        )

    def with_facts(self, *specs: FactSpec) -> Vocabulary:
        return Vocabulary([*self.specs.values(), *specs])

    def without_oi(self, at: date, patient_ref: str | None) -> PatientFacts:
        """The facts of a patient with no OI Condition: nothing else is read (the common case)."""
        values = {name: spec.without_oi for name, spec in self.specs.items()}
        return PatientFacts(at, patient_ref, self.specs, MappingProxyType(values))


VOCABULARY = Vocabulary(SPECS)
FACT_NAMES = VOCABULARY.names
OBSERVATION_FACTS = VOCABULARY.observation_facts
