"""FHIR resources + an evaluation date -> PatientFacts, following the contract's definitions.

Codes are matched only through the value sets of fhir_profiles/ (via Terminology); the value
set ids used here name concepts (``oi-condition``, ``long-bone-fracture``...), never codes.
The input has passed structural validation, so field shapes are trusted here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

from services.plan_builder import dates
from services.plan_builder.dates import DateRange
from services.plan_builder.errors import PlanInputError
from services.plan_builder.medications import (
    Medications,
    index_medications,
    medication_concepts,
    referenced,
)
from services.plan_builder.settings import PlanSettings
from services.plan_builder.site import ANSWER_BOOLEAN, ANSWER_TEXT, ObservationFact, text_code
from services.plan_builder.structural import check_fields, validate_resource
from services.plan_builder.terminology import Terminology, concept_texts
from services.plan_builder.types import JSON, Tri

# The names the PlanDefinitions may read as %facts.<name> / %order.<name>.
FACT_NAMES = frozenset(
    {
        "oi",
        "severity",
        "ageLow",
        "ageHigh",
        "ageUnder18",
        "skeletallyImmature",
        "youngAdult",
        "recentLongBoneFracture",
        "recurrentLongBoneFractures",
        "longBoneBowing",
        "spineDeformity",
        "basilarInvagination",
        "vertebralFracture",
        "functionalStatus",
        "activeBisphosphonate",
        "boneSize",
        "missingFacts",
    }
)
ORDER_FACT_NAMES = frozenset({"drugGroup", "rodType", "boneSize"})

ADULT_AGE = 18  # the contract's "age < 18"; not a site setting
COUNTED_EXCLUDED = frozenset({"refuted", "entered-in-error"})
PRESENT_CLINICAL = frozenset({"active", "recurrence", "relapse"})
OI_VERIFIED = frozenset({"confirmed"})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
ACTIVE_REQUEST = frozenset({"active", "on-hold"})

# Value set ids (concepts) the definitions read.
VS_OI = "oi-condition"
VS_SEVERITY = "oi-severity"
VS_LONG_BONE_FRACTURE = "long-bone-fracture"
VS_BOWING = "long-bone-bowing"
VS_SPINE = "spine-deformity"
VS_BASILAR = "basilar-invagination"
VS_VERTEBRAL = "vertebral-fracture"
VS_AMBULATORY = "ambulatory-status"
VS_AMBULATORY_VALUE = "ambulatory-status-value"
VS_MATURITY = "skeletal-maturity"
VS_MATURITY_VALUE = "skeletal-maturity-value"
VS_CANAL = "medullary-canal-diameter"
VS_BISPHOSPHONATE = "drug-bisphosphonate"
UCUM = "http://unitsofmeasure.org"
# The facts read from Observations, for what a site must map (site.unavailable, prefetch).
OBSERVATION_FACTS = (
    ObservationFact(
        "functional status (ambulatory status)", VS_AMBULATORY, VS_AMBULATORY_VALUE, "functionalStatus"
    ),
    ObservationFact(
        "skeletal maturity (observed; else from age)", VS_MATURITY, VS_MATURITY_VALUE, "skeletallyImmature"
    ),
    ObservationFact("bone size (medullary canal diameter)", VS_CANAL, None, "boneSize"),
)
_MM_FACTOR = {"mm": 1.0, "cm": 10.0}


@dataclass(frozen=True, slots=True)
class Fracture:
    ref: str | None
    bone: str
    onset: DateRange | None
    present: bool


@dataclass(frozen=True, slots=True)
class Missing:
    """A fact the record does not settle, and which facts it leaves undecided."""

    fact: str
    text: str
    affects: tuple[str, ...]
    fires_missing_facts: bool = True


@dataclass(frozen=True)
class PatientFacts:
    evaluated_on: date
    patient_ref: str | None
    gender: str | None
    birth_date: DateRange | None
    age_low: int | None
    age_high: int | None
    oi: bool
    oi_types: tuple[str, ...]
    severity: str | None
    severity_source: str | None  # "explicit" (Condition.severity) | "type"
    age_under_18: Tri
    skeletally_immature: Tri
    skeletal_maturity_source: str | None  # "observed" | "age"
    maturity_age: int
    young_adult: Tri
    fractures: tuple[Fracture, ...]
    recent_long_bone_fracture: Tri
    recurrent_long_bone_fractures: Tri
    recurrent_count: int
    long_bone_bowing: bool
    spine_deformity: bool
    basilar_invagination: bool
    vertebral_fracture: bool
    functional_status: str | None
    active_bisphosphonate: Tri
    medullary_canal_diameter_mm: float | None
    canal_by_site: tuple[tuple[str, float], ...]
    bone_size: str  # "small" | "fits" | "unknown"
    missing: tuple[Missing, ...]
    notes: tuple[str, ...]
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def without_oi(cls, at: date, patient_ref: str | None) -> PatientFacts:
        """The facts of a patient with no OI Condition: nothing else is read (the common case)."""
        return cls(
            evaluated_on=at,
            patient_ref=patient_ref,
            gender=None,
            birth_date=None,
            age_low=None,
            age_high=None,
            oi=False,
            oi_types=(),
            severity=None,
            severity_source=None,
            age_under_18=None,
            skeletally_immature=None,
            skeletal_maturity_source=None,
            maturity_age=0,
            young_adult=None,
            fractures=(),
            recent_long_bone_fracture=False,
            recurrent_long_bone_fractures=False,
            recurrent_count=0,
            long_bone_bowing=False,
            spine_deformity=False,
            basilar_invagination=False,
            vertebral_fracture=False,
            functional_status=None,
            active_bisphosphonate=False,
            medullary_canal_diameter_mm=None,
            canal_by_site=(),
            bone_size="unknown",
            missing=(),
            notes=(),
        )

    @property
    def missing_facts(self) -> bool:
        return any(m.fires_missing_facts for m in self.missing)

    def vector(self) -> dict[str, Any]:
        """The facts as the PlanDefinitions read them (%facts); None is FHIRPath's empty."""
        return {
            "oi": self.oi,
            "severity": self.severity,
            "ageLow": self.age_low,
            "ageHigh": self.age_high,
            "ageUnder18": self.age_under_18,
            "skeletallyImmature": self.skeletally_immature,
            "youngAdult": self.young_adult,
            "recentLongBoneFracture": self.recent_long_bone_fracture,
            "recurrentLongBoneFractures": self.recurrent_long_bone_fractures,
            "longBoneBowing": self.long_bone_bowing,
            "spineDeformity": self.spine_deformity,
            "basilarInvagination": self.basilar_invagination,
            "vertebralFracture": self.vertebral_fracture,
            "functionalStatus": self.functional_status,
            "activeBisphosphonate": self.active_bisphosphonate,
            "boneSize": self.bone_size,
            "missingFacts": self.missing_facts,
        }

    def age_text(self) -> str:
        if self.age_low is None or self.age_high is None:
            return "age unknown (no birth date)"
        if self.age_low == self.age_high:
            return f"age {self.age_low} years"
        return f"age {self.age_low}-{self.age_high} years (partial birth date)"

    def describe(self, name: str) -> str:
        """A clinician-readable statement of one fact, for reasons and explanations."""
        return _DESCRIBE[name](self)


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


def _describe_fractures(f: PatientFacts, recent: bool) -> str:
    if recent:
        items = [x for x in f.fractures if x.ref in f.evidence.get("recentLongBoneFracture", ())]
        if f.recent_long_bone_fracture is None:
            return "a long-bone fracture whose partial onset date may fall in the recent window"
        if not f.recent_long_bone_fracture:
            return "no recent long-bone fracture"
        listed = ", ".join(f"{x.bone} (onset {x.onset or 'not recorded'})" for x in items)
        return "recent long-bone fracture: " + (listed or "recorded")
    if f.recurrent_long_bone_fractures is None:
        return "long-bone fracture count in the window undecided (partial onset dates)"
    return f"{f.recurrent_count} long-bone fracture(s) in the recurrence window"


def _describe_bone_size(f: PatientFacts) -> str:
    if f.medullary_canal_diameter_mm is None:
        return "bone size not measured"
    relation = "below" if f.bone_size == "small" else "at or above"
    return f"medullary canal {f.medullary_canal_diameter_mm:g} mm, {relation} the smallest telescoping rod"


_TRI_BISPHOSPHONATE = {
    True: "on an active bisphosphonate",
    False: "no active bisphosphonate",
    None: "bisphosphonate status undecided (partial dates)",
}
_DESCRIBE: dict[str, Callable[[PatientFacts], str]] = {
    "oi": lambda f: "osteogenesis imperfecta" + (f" ({', '.join(f.oi_types)})" if f.oi_types else ""),
    "severity": _describe_severity,
    "ageLow": lambda f: f.age_text(),
    "ageHigh": lambda f: f.age_text(),
    "ageUnder18": lambda f: f.age_text(),
    "skeletallyImmature": _describe_maturity,
    "youngAdult": lambda f: (
        (
            "young adult"
            if f.young_adult
            else "not a young adult"
            if f.young_adult is False
            else "young-adult status unknown"
        )
        + f" ({_describe_maturity(f)}, {f.age_text()})"
    ),
    "recentLongBoneFracture": lambda f: _describe_fractures(f, recent=True),
    "recurrentLongBoneFractures": lambda f: _describe_fractures(f, recent=False),
    "longBoneBowing": lambda f: (
        "long-bone bowing/deformity " + ("present" if f.long_bone_bowing else "absent")
    ),
    "spineDeformity": lambda f: "scoliosis/kyphoscoliosis " + ("present" if f.spine_deformity else "absent"),
    "basilarInvagination": lambda f: (
        "basilar invagination " + ("present" if f.basilar_invagination else "absent")
    ),
    "vertebralFracture": lambda f: "vertebral fracture " + ("present" if f.vertebral_fracture else "absent"),
    "functionalStatus": lambda f: f"functional status {f.functional_status or 'unknown'}",
    "activeBisphosphonate": lambda f: _TRI_BISPHOSPHONATE[f.active_bisphosphonate],
    "boneSize": _describe_bone_size,
    "missingFacts": lambda f: "missing: " + "; ".join(m.text for m in f.missing if m.fires_missing_facts),
}


def may_have_oi(resources: Iterable[JSON], term: Terminology) -> bool:
    """False only when no Condition can be OI: a cheap scan of codes, nothing validated.

    A Condition whose code is malformed answers True, so the full (validating) path decides."""
    for resource in resources:
        if resource.get("resourceType") != "Condition":
            continue
        code = resource.get("code")
        if code is None:
            continue
        if not isinstance(code, dict) or not isinstance(code.get("coding", []), list):
            return True
        for coding in code.get("coding") or ():
            if not isinstance(coding, dict):
                return True
            system, value = coding.get("system"), coding.get("code")
            if not isinstance(system, str) or not isinstance(value, str):
                if system is not None or value is not None:
                    return True
                continue
            if VS_OI in term.lookup(system, value):
                return True
    return False


def drug_value_sets(resource: JSON, medications: Medications, term: Terminology) -> frozenset[str]:
    """ValueSets of the drug a medication resource names, by code and by name."""
    concepts = medication_concepts(resource, medications)
    found = term.named([t for c in concepts for t in concept_texts(c)])
    for concept in concepts:
        found = found | term.coded(concept)
    return found


def resource_ref(resource: JSON) -> str | None:
    rid = resource.get("id")
    return f"{resource['resourceType']}/{rid}" if rid else None


CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL_CODES = frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"})
VERIFICATION_CODES = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)


def status_codes(concept: JSON | None, system: str, known: frozenset[str]) -> frozenset[str]:
    """The status codes a CodeableConcept states, read from all of its codings.

    FHIR R4: "Ordering of codings is undefined and SHALL NOT be used to infer meaning", so a
    local coding listed first must not hide the standard one. Codings of the status system
    decide; without one, any coding (or the text) whose code is a value of that system.
    """
    if not concept:
        return _NO_CODES
    codings = [c for c in concept.get("coding") or () if isinstance(c, dict) and c.get("code")]
    standard = frozenset(str(c["code"]).strip().lower() for c in codings if c.get("system") == system)
    if standard:
        return standard
    loose = {str(c["code"]).strip().lower() for c in codings} & known
    text = concept.get("text")
    if isinstance(text, str) and text.strip().lower() in known:
        loose.add(text.strip().lower())
    return frozenset(loose)


_NO_CODES: frozenset[str] = frozenset()


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


class _Collector:
    """Mutable scratch space while one patient's facts are worked out."""

    def __init__(self, at: date, validate: bool) -> None:
        self.validate = validate
        self.at = at
        self.notes: list[str] = []
        self.evidence: dict[str, list[str]] = {}

    def peek(self, resource: JSON, *fields: str) -> None:
        """Validate the fields that decide whether a resource matters (lazy validation)."""
        if self.validate:
            check_fields(resource, *fields)

    def check(self, resource: JSON) -> None:
        """Validate a resource the rules are about to read in full."""
        if self.validate:
            validate_resource(resource)

    def cite(self, name: str, ref: str | None) -> None:
        if ref:
            refs = self.evidence.setdefault(name, [])
            if ref not in refs:
                refs.append(ref)

    def dated(self, ref: str | None, label: str, text: str | None, parse: Any) -> DateRange | None:
        """Parse a date; one after the evaluation date is a data error (ignored, noted)."""
        if not text:
            return None
        value: DateRange = parse(text)
        if value.start > self.at:
            self.notes.append(f"{ref or 'a resource'}: {label} {text} is after the evaluation date; ignored")
            return None
        if value.end > self.at:
            value = DateRange(value.start, self.at)
        return value


def extract_facts(
    patient: JSON,
    resources: Sequence[JSON],
    at: date,
    terminology: Terminology,
    settings: PlanSettings,
    patient_ref: str | None = None,
    validate: bool = False,
) -> PatientFacts:
    """With validate=True, resources are structurally validated as they are read: a resource
    whose code no value set knows is ignored after checking its code alone."""
    col = _Collector(at, validate)
    col.check(patient)
    patient_ref = patient_ref or resource_ref(patient)
    gender = patient.get("gender")
    birth = col.dated(patient_ref, "birthDate", patient.get("birthDate"), dates.parse_date)
    age_low, age_high = dates.age_range(birth, at) if birth else (None, None)
    if age_low is not None:
        age_low = max(age_low, 0)

    if patient.get("modifierExtension"):
        raise PlanInputError(
            "has a modifierExtension this service does not understand: it cannot be planned (FHIR: "
            "such a resource must not be processed)",
            resource_type="Patient",
            path="Patient.modifierExtension",
            code="not-supported",
        )
    by_type: dict[str, list[JSON]] = {}
    for resource in resources:
        if resource.get("modifierExtension"):
            # FHIR: a resource with a modifier extension we do not understand is not read
            label = resource_ref(resource) or resource.get("resourceType", "a resource")
            col.notes.append(f"{label} has a modifierExtension this service does not understand; ignored")
            continue
        by_type.setdefault(resource.get("resourceType", ""), []).append(resource)

    conditions = _read_conditions(by_type.get("Condition", []), birth, col, terminology)
    observations = _read_observations(by_type.get("Observation", []), col, terminology)
    oi_conditions = conditions["oi"]
    oi = bool(oi_conditions)
    for c in oi_conditions:
        col.cite("oi", resource_ref(c))
    severity, severity_source, oi_types = _severity(oi_conditions, col, terminology)

    maturity_age = settings.maturity_age(gender)
    maturity_obs = _latest(observations.get(VS_MATURITY, []))
    immature: Tri
    if maturity_obs is not None:
        immature = maturity_obs[2] == "immature"
        maturity_source: str | None = "observed"
        col.cite("skeletallyImmature", maturity_obs[1])
    else:
        immature = dates.below(age_low, age_high, maturity_age)
        maturity_source = "age" if immature is not None else None
    for name in ("ageUnder18", "skeletallyImmature", "youngAdult"):
        col.cite(name, patient_ref)
    mature = None if immature is None else not immature
    young_adult = tri_and(mature, dates.below(age_low, age_high, settings.young_adult_age_limit))
    if maturity_obs is not None:
        col.cite("youngAdult", maturity_obs[1])

    fractures: list[Fracture] = conditions["fractures"]
    recent, recurrent, recurrent_count = _fracture_flags(fractures, at, settings, col)

    functional = None
    ambulatory = _latest(observations.get(VS_AMBULATORY, []))
    if ambulatory is not None:
        since = dates.add_months(at, -settings.functional_status_max_age_months)
        if ambulatory[0].start >= since:
            functional = ambulatory[2]
            col.cite("functionalStatus", ambulatory[1])
        else:
            col.notes.append(
                f"{ambulatory[1] or 'an Observation'}: ambulatory status dated {ambulatory[0]} is older "
                f"than {settings.functional_status_max_age_months} months; functional status unknown"
            )

    canal_by_site = _canal_by_site(observations.get(VS_CANAL, []), col)
    canal = min((v for _, v in canal_by_site), default=None)
    bone_size = (
        "unknown" if canal is None else ("small" if canal < settings.smallest_telescoping_rod_mm else "fits")
    )

    active_bp = _active_bisphosphonate(
        by_type.get("MedicationRequest", []) + by_type.get("MedicationStatement", []),
        at,
        settings,
        col,
        terminology,
        index_medications(by_type.get("Medication", [])),
    )

    missing = _missing(
        oi, severity, patient.get("birthDate"), birth, age_low, age_high, maturity_age, settings
    )
    if recent is None:
        missing.append(
            Missing(
                "fractureOnset",
                "a long-bone fracture's partial onset date straddles the recent-fracture window",
                ("recentLongBoneFracture",),
                fires_missing_facts=False,
            )
        )
    if recurrent is None:
        missing.append(
            Missing(
                "fractureOnset",
                "partial fracture onset dates leave the count of recent long-bone fractures undecided",
                ("recurrentLongBoneFractures",),
                fires_missing_facts=False,
            )
        )
    if active_bp is None:
        missing.append(
            Missing(
                "bisphosphonateDate",
                "a completed bisphosphonate with a partial date may or may not fall in the active window",
                ("activeBisphosphonate",),
                fires_missing_facts=False,
            )
        )
    for m in missing:
        if m.fires_missing_facts:
            col.cite("missingFacts", patient_ref)

    return PatientFacts(
        evaluated_on=at,
        patient_ref=patient_ref,
        gender=gender,
        birth_date=birth,
        age_low=age_low,
        age_high=age_high,
        oi=oi,
        oi_types=oi_types,
        severity=severity,
        severity_source=severity_source,
        age_under_18=dates.below(age_low, age_high, ADULT_AGE),
        skeletally_immature=immature,
        skeletal_maturity_source=maturity_source,
        maturity_age=maturity_age,
        young_adult=young_adult,
        fractures=tuple(fractures),
        recent_long_bone_fracture=recent,
        recurrent_long_bone_fractures=recurrent,
        recurrent_count=recurrent_count,
        long_bone_bowing=bool(conditions["bowing"]),
        spine_deformity=bool(conditions["spine"]),
        basilar_invagination=bool(conditions["basilar"]),
        vertebral_fracture=bool(conditions["vertebral"]),
        functional_status=functional,
        active_bisphosphonate=active_bp,
        medullary_canal_diameter_mm=canal,
        canal_by_site=tuple(canal_by_site),
        bone_size=bone_size,
        missing=tuple(missing),
        notes=tuple(col.notes),
        evidence=MappingProxyType({k: tuple(v) for k, v in col.evidence.items()}),
    )


def _onset(condition: JSON, ref: str | None, birth: DateRange | None, col: _Collector) -> DateRange | None:
    """onsetDateTime, else onsetPeriod.start, else birthDate + onsetAge, else recordedDate."""
    onset = col.dated(ref, "onsetDateTime", condition.get("onsetDateTime"), dates.parse_datetime)
    if onset is None:
        start = (condition.get("onsetPeriod") or {}).get("start")
        onset = col.dated(ref, "onsetPeriod.start", start, dates.parse_datetime)
    if onset is None and birth is not None and condition.get("onsetAge"):
        onset = _birth_plus_age(birth, condition["onsetAge"], ref, col)
    if onset is None:
        onset = col.dated(ref, "recordedDate", condition.get("recordedDate"), dates.parse_datetime)
    return onset


_AGE_UNITS = {
    "a": ("months", 12),
    "year": ("months", 12),
    "years": ("months", 12),
    "yr": ("months", 12),
    "mo": ("months", 1),
    "month": ("months", 1),
    "months": ("months", 1),
    "wk": ("days", 7),
    "week": ("days", 7),
    "weeks": ("days", 7),
    "d": ("days", 1),
    "day": ("days", 1),
    "days": ("days", 1),
}


def _birth_plus_age(birth: DateRange, age: JSON, ref: str | None, col: _Collector) -> DateRange | None:
    unit = str(age.get("code") or age.get("unit") or "").strip().lower()
    value = age.get("value")
    if unit not in _AGE_UNITS or value is None:
        col.notes.append(f"{ref or 'a Condition'}: onsetAge has no usable value/unit; ignored")
        return None
    kind, factor = _AGE_UNITS[unit]
    try:
        amount = float(value) * factor
        if kind == "months" and amount.is_integer():
            start, end = dates.add_months(birth.start, int(amount)), dates.add_months(birth.end, int(amount))
        else:
            days = round(amount * (30.4375 if kind == "months" else 1))
            start, end = dates.add_days(birth.start, days), dates.add_days(birth.end, days)
    except (OverflowError, ValueError):
        # one absurd chart entry ({1000000 a}, {1e300 wk}) must not stop the patient's plan
        col.notes.append(f"{ref or 'a Condition'}: onsetAge is out of any date range; ignored")
        return None
    if start > col.at:
        col.notes.append(
            f"{ref or 'a Condition'}: onsetAge puts the onset after the evaluation date; ignored"
        )
        return None
    return DateRange(start, min(end, col.at))


def _read_conditions(
    conditions: list[JSON], birth: DateRange | None, col: _Collector, term: Terminology
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "oi": [],
        "fractures": [],
        "bowing": [],
        "spine": [],
        "basilar": [],
        "vertebral": [],
    }
    bone_sets = term.children.get(VS_LONG_BONE_FRACTURE, ())
    for condition in conditions:
        col.peek(condition, "code")
        vsets = term.coded(condition.get("code"))
        if not vsets:
            continue  # unknown codes are ignored, not errors
        col.check(condition)
        verification = status_codes(
            condition.get("verificationStatus"), VERIFICATION_SYSTEM, VERIFICATION_CODES
        )
        if verification & COUNTED_EXCLUDED:
            continue  # any coding saying entered-in-error or refuted removes it
        clinical = status_codes(condition.get("clinicalStatus"), CLINICAL_SYSTEM, CLINICAL_CODES)
        # codings that disagree keep a finding present rather than silence a warning
        present = not clinical or bool(clinical & PRESENT_CLINICAL)
        ref = resource_ref(condition)
        if VS_OI in vsets and present and verification <= OI_VERIFIED:
            found["oi"].append(condition)
        if VS_LONG_BONE_FRACTURE in vsets:
            bone = next((term.titles[v] for v in bone_sets if v in vsets), "long bone")
            found["fractures"].append(Fracture(ref, bone, _onset(condition, ref, birth, col), present))
        for vs, slot, fact in (
            (VS_BOWING, "bowing", "longBoneBowing"),
            (VS_SPINE, "spine", "spineDeformity"),
            (VS_BASILAR, "basilar", "basilarInvagination"),
            (VS_VERTEBRAL, "vertebral", "vertebralFracture"),
        ):
            if vs in vsets and present:
                found[slot].append(condition)
                col.cite(fact, ref)
    return found


def _severity(
    oi_conditions: list[JSON], col: _Collector, term: Terminology
) -> tuple[str | None, str | None, tuple[str, ...]]:
    """Explicit Condition.severity on any OI Condition beats types; the most severe wins."""
    levels = term.children.get(VS_SEVERITY, ())  # severity-mild, severity-moderate, severity-severe
    rank = {vid: i for i, vid in enumerate(levels)}
    explicit: list[tuple[int, str | None]] = []
    typed: list[tuple[int, str | None]] = []
    types: list[str] = []
    type_sets = term.children.get(VS_OI, ())
    for condition in oi_conditions:
        ref = resource_ref(condition)
        sev = condition.get("severity")
        matched = (term.coded(sev) | term.named(concept_texts(sev))) & rank.keys()
        if matched:
            explicit.append((max(rank[v] for v in matched), ref))
        code = condition.get("code") or {}
        vsets = term.coded(code)
        for vid in (v for v in type_sets if v in vsets):
            if term.titles[vid] not in types:
                types.append(term.titles[vid])
            implied = term.implied_severity.get(vid)
            hits = term.lookup(*implied) & rank.keys() if implied else frozenset()
            if hits:
                typed.append((max(rank[v] for v in hits), ref))
    chosen, source = (explicit, "explicit") if explicit else (typed, "type")
    if not chosen:
        return None, None, tuple(types)
    top = max(r for r, _ in chosen)
    if len({r for r, _ in chosen}) > 1:
        found = ", ".join(sorted({_level(levels[r]) for r, _ in chosen}))
        col.notes.append(
            f"OI Conditions disagree on severity ({found}); the most severe ({_level(levels[top])}) is used"
        )
    for _, ref in chosen:
        col.cite("severity", ref)
    return _level(levels[top]), source, tuple(types)


def _level(vid: str) -> str:
    # severity value sets are named severity-<level> (see docs/clinical-rules.md)
    return vid.removeprefix("severity-")


def _observation_date(obs: JSON, ref: str | None, col: _Collector) -> DateRange | None:
    """effectiveDateTime, else effectivePeriod.end, else issued."""
    if obs.get("effectiveDateTime"):
        return col.dated(ref, "effectiveDateTime", obs["effectiveDateTime"], dates.parse_datetime)
    end = (obs.get("effectivePeriod") or {}).get("end")
    if end:
        return col.dated(ref, "effectivePeriod.end", end, dates.parse_datetime)
    return col.dated(ref, "issued", obs.get("issued"), dates.parse_datetime)


# (date, ref, value, order in input, the observation)
_Obs = tuple[DateRange, str | None, Any, int, JSON]


def _read_observations(observations: list[JSON], col: _Collector, term: Terminology) -> dict[str, list[_Obs]]:
    found: dict[str, list[_Obs]] = {}
    for index, obs in enumerate(observations):
        col.peek(obs, "status", "code")
        if obs.get("status") not in FINAL_OBSERVATION:
            continue
        vsets = term.coded(obs.get("code"))
        kind = next((v for v in (VS_AMBULATORY, VS_MATURITY, VS_CANAL) if v in vsets), None)
        if kind is None:
            continue
        col.check(obs)
        ref = resource_ref(obs)
        when = _observation_date(obs, ref, col)
        if when is None:
            continue
        value: Any
        if kind == VS_CANAL:
            value = _millimetres(obs.get("valueQuantity"), ref, col, term)
        else:
            value = _answer(
                obs, term, VS_AMBULATORY_VALUE if kind == VS_AMBULATORY else VS_MATURITY_VALUE, kind
            )
        if value is None:
            col.notes.append(f"{ref or 'an Observation'}: value not recognised; ignored")
            continue
        found.setdefault(kind, []).append((when, ref, value, index, obs))
    return found


def _answer(obs: JSON, term: Terminology, value_set: str, question: str) -> str | None:
    """The project answer code of an Observation: by code, by text or by boolean, through the
    site's maps (``question`` scopes answers shared by several questions)."""
    concept = obs.get("valueCodeableConcept") or {}
    for coding in concept.get("coding") or ():
        for t in term.translate(coding.get("system", ""), coding.get("code", ""), question):
            if value_set in term.lookup(t.system, t.code):
                return t.code
    candidates: list[tuple[str, str]] = []
    if isinstance(obs.get("valueBoolean"), bool):
        candidates.append((ANSWER_BOOLEAN, "true" if obs["valueBoolean"] else "false"))
    texts = [concept.get("text"), obs.get("valueString")]
    candidates += [(ANSWER_TEXT, text_code(t)) for t in texts if isinstance(t, str) and t.strip()]
    for system, code in candidates:
        for t in term.translate(system, code, question)[1:]:
            if value_set in term.lookup(t.system, t.code):
                return t.code
    return None


def _millimetres(quantity: JSON | None, ref: str | None, col: _Collector, term: Terminology) -> float | None:
    if not quantity or quantity.get("value") is None:
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
    if unit.lower() in _MM_FACTOR:
        return float(quantity["value"]) * _MM_FACTOR[unit.lower()]
    for t in term.translate(str(quantity.get("system") or ""), unit)[1:]:
        if t.system == UCUM and t.code in _MM_FACTOR:
            return float(quantity["value"]) * (t.factor or 1.0) * _MM_FACTOR[t.code]
    col.notes.append(f"{ref or 'an Observation'}: medullary canal diameter unit {unit!r} is not mm or cm")
    return None


def _latest(items: list[_Obs]) -> _Obs | None:
    return max(items, key=lambda o: (o[0].start, o[3]), default=None)


SNOMED = "http://snomed.info/sct"


def site_key(obs: JSON) -> str:
    """The bone a measurement or an order is at, the same whatever the order of its codings
    (FHIR: coding order carries no meaning): its SNOMED CT coding, else the least of its
    codings, else its text."""
    site = obs.get("bodySite") or {}
    keys = sorted(
        (c.get("system") != SNOMED, f"{c.get('system', '')}|{c['code']}")
        for c in site.get("coding") or ()
        if isinstance(c, dict) and c.get("code")
    )
    if keys:
        return keys[0][1]
    return str(site.get("text") or "unspecified").strip().lower()


def _canal_by_site(items: list[_Obs], col: _Collector) -> list[tuple[str, float]]:
    latest: dict[str, _Obs] = {}
    for item in items:
        key = site_key(item[4])
        if key not in latest or (item[0].start, item[3]) > (latest[key][0].start, latest[key][3]):
            latest[key] = item
    for item in latest.values():
        col.cite("boneSize", item[1])
    return [(key, float(item[2])) for key, item in latest.items()]


def _fracture_flags(
    fractures: list[Fracture], at: date, settings: PlanSettings, col: _Collector
) -> tuple[Tri, Tri, int]:
    recent_since = dates.add_days(at, -settings.recent_fracture_days)
    recurrent_since = dates.add_months(at, -settings.recurrent_window_months)
    recent_values: list[Tri] = []
    definite = possible = 0
    for f in fractures:
        if f.present:
            is_recent = True if f.onset is None else dates.on_or_after(f.onset, recent_since)
            recent_values.append(is_recent)
            if is_recent is not False:
                col.cite("recentLongBoneFracture", f.ref)
        if f.onset is None:
            continue  # a fracture with no onset does not count towards "recurrent"
        in_window = dates.on_or_after(f.onset, recurrent_since)
        if in_window is not False:
            col.cite("recurrentLongBoneFractures", f.ref)
        definite += in_window is True
        possible += in_window is None
    if definite >= settings.recurrent_fracture_count:
        recurrent: Tri = True
    elif definite + possible >= settings.recurrent_fracture_count:
        recurrent = None
    else:
        recurrent = False
    return tri_any(recent_values), recurrent, definite


def _active_bisphosphonate(
    meds: list[JSON],
    at: date,
    settings: PlanSettings,
    col: _Collector,
    term: Terminology,
    medications: Medications,
) -> Tri:
    since = dates.add_months(at, -settings.bisphosphonate_completed_window_months)
    values: list[Tri] = []
    for med in meds:
        col.peek(med, "medicationCodeableConcept", "medicationReference", "contained")
        medication = referenced(med, medications)
        if medication is not None:
            col.check(medication)
        if VS_BISPHOSPHONATE not in drug_value_sets(med, medications, term):
            continue
        col.check(med)
        status, kind, ref = med.get("status"), med["resourceType"], resource_ref(med)
        active: Tri = False
        if (kind == "MedicationRequest" and status in ACTIVE_REQUEST) or (
            kind == "MedicationStatement" and status == "active"
        ):
            active = True
        elif status == "completed":
            if kind == "MedicationRequest":
                raw = med.get("authoredOn")
            else:
                period = med.get("effectivePeriod") or {}
                raw = med.get("effectiveDateTime") or period.get("end") or period.get("start")
            when = col.dated(ref, "date", raw, dates.parse_datetime)
            active = False if when is None else dates.on_or_after(when, since)
        if active is not False:
            col.cite("activeBisphosphonate", ref)
        values.append(active)
    return tri_any(values)


def _missing(
    oi: bool,
    severity: str | None,
    raw_birth: str | None,
    birth: DateRange | None,
    age_low: int | None,
    age_high: int | None,
    maturity_age: int,
    settings: PlanSettings,
) -> list[Missing]:
    out: list[Missing] = []
    if oi and severity is None:
        out.append(
            Missing(
                "severity",
                "OI severity unknown (no Condition.severity and no OI type that implies one)",
                ("severity",),
            )
        )
    if birth is None:
        out.append(
            Missing(
                "birthDate",
                "birth date not recorded (age unknown)"
                if not raw_birth
                else "birth date unusable (age unknown)",
                ("ageUnder18", "skeletallyImmature", "youngAdult"),
            )
        )
        return out
    thresholds = (
        (ADULT_AGE, "age 18", "ageUnder18"),
        (maturity_age, f"the skeletal-maturity age {maturity_age}", "skeletallyImmature"),
        (
            settings.young_adult_age_limit,
            f"the young-adult limit {settings.young_adult_age_limit}",
            "youngAdult",
        ),
    )
    for threshold, label, fact in thresholds:
        if dates.below(age_low, age_high, threshold) is None:
            out.append(
                Missing(
                    "birthDate",
                    f"birth date is partial ({raw_birth}): age {age_low}-{age_high} years straddles {label}",
                    (fact,),
                )
            )
    return out
