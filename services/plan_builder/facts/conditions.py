"""Facts read from Conditions: OI and its severity, long-bone fractures, skeletal findings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from services.plan_builder import dates
from services.plan_builder.dates import DateRange
from services.plan_builder.facts.base import (
    ABSENT,
    FactValue,
    Missing,
    Record,
    dedupe,
    resource_ref,
    tri_any,
    undecided,
)
from services.plan_builder.terminology import Terminology, concept_texts
from services.plan_builder.types import JSON, Tri

VS_OI = "oi-condition"
VS_SEVERITY = "oi-severity"
VS_LONG_BONE_FRACTURE = "long-bone-fracture"
COUNTED_EXCLUDED = frozenset({"refuted", "entered-in-error"})
PRESENT_CLINICAL = frozenset({"active", "recurrence", "relapse"})
OI_VERIFIED = frozenset({"confirmed"})
CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL_CODES = frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"})
VERIFICATION_CODES = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)
_NO_CODES: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Fracture:
    ref: str | None
    bone: str
    onset: DateRange | None
    present: bool


class ConditionRead(NamedTuple):
    """A Condition some ValueSet knows, not refuted or entered in error."""

    resource: JSON
    ref: str | None
    value_sets: frozenset[str]
    present: bool  # clinically present (codings that disagree keep it present)
    verification: frozenset[str]


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


def read_conditions(record: Record) -> None:
    """The Conditions any ValueSet knows (unknown codes are ignored, not errors), and the
    long-bone fractures with their onsets."""
    term = record.terminology
    bone_sets = term.children.get(VS_LONG_BONE_FRACTURE, ())
    for condition in record.by_type.get("Condition", []):
        record.peek(condition, "code")
        vsets = term.coded(condition.get("code"))
        if not vsets:
            continue
        record.check(condition)
        verification = status_codes(
            condition.get("verificationStatus"), VERIFICATION_SYSTEM, VERIFICATION_CODES
        )
        if verification & COUNTED_EXCLUDED:
            continue  # any coding saying entered-in-error or refuted removes it
        clinical = status_codes(condition.get("clinicalStatus"), CLINICAL_SYSTEM, CLINICAL_CODES)
        present = not clinical or bool(clinical & PRESENT_CLINICAL)
        ref = resource_ref(condition)
        read = ConditionRead(condition, ref, vsets, present, verification)
        record.conditions.append(read)
        if present:
            for vs in vsets:
                record.present.setdefault(vs, []).append(read)
        if VS_LONG_BONE_FRACTURE in vsets:
            bone = next((term.titles[v] for v in bone_sets if v in vsets), "long bone")
            record.fractures.append(Fracture(ref, bone, _onset(condition, ref, record), present))


def present(record: Record, value_set: str) -> list[ConditionRead]:
    return record.present.get(value_set, [])


def finding(value_set: str) -> Callable[[Record], FactValue]:
    """A reader: whether a Condition of the ValueSet is present."""

    def read(record: Record) -> FactValue:
        found = record.present.get(value_set)
        return FactValue(True, dedupe([c.ref for c in found])) if found else ABSENT

    return read


def read_oi(record: Record) -> FactValue:
    """A present, confirmed (or unstated) OI Condition; its types in detail."""
    term = record.terminology
    found = [c for c in present(record, VS_OI) if c.verification <= OI_VERIFIED]
    if not found:
        return ABSENT
    types: list[str] = []
    typed: list[tuple[ConditionRead, str]] = []  # (condition, OI type ValueSet), for severity
    for c in found:
        for vid in term.children.get(VS_OI, ()):
            if vid in c.value_sets:
                typed.append((c, vid))
                if term.titles[vid] not in types:
                    types.append(term.titles[vid])
    detail = {"conditions": found, "types": tuple(types), "typed": typed}
    return FactValue(True, dedupe([c.ref for c in found]), detail=detail)


def read_severity(record: Record) -> FactValue:
    """Explicit Condition.severity on any OI Condition beats types; the most severe wins."""
    term = record.terminology
    oi = record.fact("oi")
    levels = term.children.get(VS_SEVERITY, ())  # severity-mild, severity-moderate, severity-severe
    rank = {vid: i for i, vid in enumerate(levels)}
    explicit: list[tuple[int, str | None]] = []
    typed: list[tuple[int, str | None]] = []
    for c in oi.detail.get("conditions", ()):
        sev = c.resource.get("severity")
        if sev:
            matched = (term.coded(sev) | term.named(concept_texts(sev))) & rank.keys()
            if matched:
                explicit.append((max(rank[v] for v in matched), c.ref))
    for c, vid in oi.detail.get("typed", ()):
        implied = term.implied_severity.get(vid)
        hits = term.lookup(*implied) & rank.keys() if implied else frozenset()
        if hits:
            typed.append((max(rank[v] for v in hits), c.ref))
    chosen, source = (explicit, "explicit") if explicit else (typed, "type")
    if not chosen:
        missing = (
            Missing(
                "severity",
                "OI severity unknown (no Condition.severity and no OI type that implies one)",
                ("severity",),
            ),
        )
        return FactValue(None, missing=missing if oi.value else ())
    top = max(r for r, _ in chosen)
    notes: tuple[str, ...] = ()
    if len({r for r, _ in chosen}) > 1:
        found = ", ".join(sorted({_level(levels[r]) for r, _ in chosen}))
        notes = (
            f"OI Conditions disagree on severity ({found}); the most severe ({_level(levels[top])}) is used",
        )
    return FactValue(
        _level(levels[top]), dedupe([ref for _, ref in chosen]), notes, detail={"source": source}
    )


def _level(vid: str) -> str:
    # severity value sets are named severity-<level> (see docs/clinical-rules.md)
    return vid.removeprefix("severity-")


def read_recent_fracture(record: Record) -> FactValue:
    """A present long-bone fracture with onset in the recent window (no onset counts as recent)."""
    if not record.fractures:
        return ABSENT
    since = dates.add_days(record.at, -record.settings.recent_fracture_days)
    values: list[Tri] = []
    refs: list[str | None] = []
    for f in record.fractures:
        if f.present:
            is_recent = True if f.onset is None else dates.on_or_after(f.onset, since)
            values.append(is_recent)
            if is_recent is not False:
                refs.append(f.ref)
    value = tri_any(values)
    missing = undecided(
        value,
        "recentLongBoneFracture",
        "fractureOnset",
        "a long-bone fracture's partial onset date straddles the recent-fracture window",
    )
    return FactValue(value, dedupe(refs), missing=missing)


def read_recurrent_fractures(record: Record) -> FactValue:
    """At least the site's count of long-bone fractures with onset in the recurrence window."""
    if not record.fractures:
        return _NO_FRACTURES
    settings = record.settings
    since = dates.add_months(record.at, -settings.recurrent_window_months)
    definite = possible = 0
    refs: list[str | None] = []
    for f in record.fractures:
        if f.onset is None:
            continue  # a fracture with no onset does not count towards "recurrent"
        in_window = dates.on_or_after(f.onset, since)
        if in_window is not False:
            refs.append(f.ref)
        definite += in_window is True
        possible += in_window is None
    value: Tri
    if definite >= settings.recurrent_fracture_count:
        value = True
    elif definite + possible >= settings.recurrent_fracture_count:
        value = None
    else:
        value = False
    missing = undecided(
        value,
        "recurrentLongBoneFractures",
        "fractureOnset",
        "partial fracture onset dates leave the count of recent long-bone fractures undecided",
    )
    return FactValue(value, dedupe(refs), missing=missing, detail={"count": definite})


_NO_FRACTURES = FactValue(False, detail={"count": 0})


def _onset(condition: JSON, ref: str | None, record: Record) -> DateRange | None:
    """onsetDateTime, else onsetPeriod.start, else birthDate + onsetAge, else recordedDate."""
    onset = record.dated(ref, "onsetDateTime", condition.get("onsetDateTime"), dates.parse_datetime)
    if onset is None:
        start = (condition.get("onsetPeriod") or {}).get("start")
        onset = record.dated(ref, "onsetPeriod.start", start, dates.parse_datetime)
    if onset is None and record.birth is not None and condition.get("onsetAge"):
        onset = _birth_plus_age(record.birth, condition["onsetAge"], ref, record)
    if onset is None:
        onset = record.dated(ref, "recordedDate", condition.get("recordedDate"), dates.parse_datetime)
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


def _birth_plus_age(birth: DateRange, age: JSON, ref: str | None, record: Record) -> DateRange | None:
    unit = str(age.get("code") or age.get("unit") or "").strip().lower()
    value = age.get("value")
    if unit not in _AGE_UNITS or value is None:
        record.notes.append(f"{ref or 'a Condition'}: onsetAge has no usable value/unit; ignored")
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
        record.notes.append(f"{ref or 'a Condition'}: onsetAge is out of any date range; ignored")
        return None
    if start > record.at:
        record.notes.append(
            f"{ref or 'a Condition'}: onsetAge puts the onset after the evaluation date; ignored"
        )
        return None
    if amount < 0:
        # The contract's onset is birthDate + onsetAge, so the date stands (a fracture before
        # birth is real in OI), but FHIR's Age is never negative: the chart entry needs a look.
        record.notes.append(
            f"{ref or 'a Condition'}: onsetAge is negative (a FHIR Age never is); "
            "read as an onset before birth"
        )
    return DateRange(start, min(end, record.at))
