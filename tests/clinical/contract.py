"""The recommendation contract (recommendations.md in the clinical folder the team shares)
written a second time, as plainly as it reads, for differential tests: random records go
through the planner and through this, and the keys must agree.

Nothing here imports services/: a reading of the contract shared by both sides would hide the
defects this is for. It covers the record shapes tests/clinical/test_contract.py generates
(full dates, one onset field per Condition, Observations without bodySite), not every FHIR
shape the planner reads.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta

Tri = bool | None

OI_TYPES = {  # concept -> severity by Sillence type (None: the type is not stated)
    "oi": None,
    "oi-icd10": None,
    "oi-type-1": "mild",
    "oi-type-4": "moderate",
    "oi-type-4b": "moderate",
    "oi-type-2": "severe",
    "oi-type-2a": "severe",
    "oi-type-3": "severe",
    "oi-perinatal-lethal": "severe",
}
EXPLICIT = {
    "mild": "mild",
    "moderate": "moderate",
    "severe": "severe",
    "mild-to-moderate": "moderate",
    "moderate-to-severe": "severe",
}
RANK = {"mild": 1, "moderate": 2, "severe": 3}
LONG_BONE_FRACTURES = {"fracture-femur", "fracture-tibia", "fracture-humerus", "fracture-femur-icd"}
PRESENT_CLINICAL = {None, "active", "recurrence", "relapse"}
FINAL = {"final", "amended", "corrected"}
BISPHOSPHONATES = {"pamidronate", "alendronate", "zoledronic acid", "risedronate"}


@dataclass
class Cond:
    concept: str
    onset: date | None = None  # whichever onset field the record uses
    severity: str | None = None
    clinical: str | None = "active"
    verification: str | None = "confirmed"


@dataclass
class Obs:
    question: str  # ambulatory-status | skeletal-maturity | medullary-canal-diameter
    value: str | float
    when: date
    status: str = "final"
    bone: str | None = None  # bodySite.text
    dated: str = "effectiveDateTime"  # which field holds `when`


@dataclass
class Med:
    name: str
    status: str
    kind: str = "MedicationRequest"
    when: date | None = None


@dataclass
class Case:
    at: date
    birth: str | None  # YYYY, YYYY-MM or YYYY-MM-DD
    gender: str | None
    conditions: list[Cond] = field(default_factory=list)
    observations: list[Obs] = field(default_factory=list)
    medications: list[Med] = field(default_factory=list)


def add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def whole_years(born: date, at: date) -> int:
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def age_range(birth: str | None, at: date) -> tuple[int, int] | None:
    if birth is None:
        return None
    parts = [int(p) for p in birth.split("-")]
    if len(parts) == 3:
        first = last = date(parts[0], parts[1], parts[2])
    elif len(parts) == 2:
        first = date(parts[0], parts[1], 1)
        last = date(parts[0], parts[1], calendar.monthrange(parts[0], parts[1])[1])
    else:
        first, last = date(parts[0], 1, 1), date(parts[0], 12, 31)
    return max(whole_years(min(last, at), at), 0), whole_years(first, at)


def below(ages: tuple[int, int] | None, threshold: int) -> Tri:
    if ages is None:
        return None
    low, high = ages
    return True if high < threshold else False if low >= threshold else None


def t_and(*values: Tri) -> Tri:
    return False if False in values else True if all(v is True for v in values) else None


def t_or(*values: Tri) -> Tri:
    return True if True in values else False if all(v is False for v in values) else None


def t_not(value: Tri) -> Tri:
    return None if value is None else not value


def present(c: Cond) -> bool:
    return c.verification not in ("refuted", "entered-in-error") and c.clinical in PRESENT_CLINICAL


def severity(oi: list[Cond]) -> str | None:
    explicit = [EXPLICIT[c.severity] for c in oi if c.severity]
    typed = [s for c in oi if (s := OI_TYPES[c.concept])]
    found = explicit or typed
    return max(found, key=RANK.__getitem__) if found else None


def latest(case: Case, question: str, bone: str | None = None) -> Obs | None:
    usable = [o for o in case.observations if o.question == question and o.status in FINAL]
    if bone is not None:
        usable = [o for o in usable if (o.bone or "unspecified") == bone]
    return max(usable, key=lambda o: o.when) if usable else None


def onset(c: Cond, at: date) -> date | None:
    return c.onset if c.onset is not None and c.onset <= at else None  # a future date is ignored


def active_bisphosphonate(case: Case) -> bool:
    since = add_months(case.at, -6)
    for m in case.medications:
        if m.name not in BISPHOSPHONATES:
            continue
        if m.kind == "MedicationRequest" and m.status in ("active", "on-hold"):
            return True
        if m.kind == "MedicationStatement" and m.status == "active":
            return True
        if m.status == "completed" and m.when is not None and since <= m.when <= case.at:
            return True
    return False


@dataclass(frozen=True)
class Derived:
    """What the order-time rules read of the patient-view reading."""

    oi: bool
    immature: Tri
    bowing: bool


def expected_keys(case: Case) -> set[str]:
    return _read(case)[0]


def rod_order_keys(case: Case, telescoping: bool, bone: str | None) -> set[str]:
    """order-rod-type-mismatch for one drafted rod (a ServiceRequest), per the contract."""
    derived = _read(case)[1]
    if not derived.oi:
        return set()
    if telescoping:
        return {"order-rod-type-mismatch"} if derived.immature is False else set()
    # the measurement at the order's bone, else the smallest (an order that names no bone
    # matches no measurement, not the ones that name none either)
    at_bone = latest(case, CANAL, bone.lower()) if bone else None
    canal = float(at_bone.value) if at_bone else _smallest_canal(case)
    fits = canal is not None and canal >= 3.2
    return {"order-rod-type-mismatch"} if derived.immature is True and fits and not derived.bowing else set()


CANAL = "medullary-canal-diameter"


def _smallest_canal(case: Case) -> float | None:
    bones = {o.bone or "unspecified" for o in case.observations if o.question == CANAL}
    per_bone = [latest(case, CANAL, bone) for bone in bones]  # the latest at each bone
    return min((float(o.value) for o in per_bone if o is not None), default=None)


def _read(case: Case) -> tuple[set[str], Derived]:
    at = case.at
    oi = [
        c
        for c in case.conditions
        if c.concept in OI_TYPES and present(c) and c.verification in (None, "confirmed")
    ]
    if not oi:
        return set(), Derived(False, None, False)
    sev = severity(oi)
    mild: Tri = None if sev is None else sev == "mild"
    modsev: Tri = None if sev is None else sev in ("moderate", "severe")
    severe: Tri = None if sev is None else sev == "severe"
    ages = age_range(case.birth, at)
    maturity_age = {"female": 14, "male": 16}.get(case.gender or "", 15)
    minor = below(ages, 18)

    def has(*concepts: str) -> bool:
        return any(c.concept in concepts and present(c) for c in case.conditions)

    lb = [c for c in case.conditions if c.concept in LONG_BONE_FRACTURES]
    recent = any(present(c) and ((o := onset(c, at)) is None or o >= at - timedelta(days=42)) for c in lb)
    window = add_months(at, -12)
    recurrent = (
        sum(
            1
            for c in lb
            if c.verification not in ("refuted", "entered-in-error")
            and (o := onset(c, at)) is not None
            and o >= window
        )
        >= 2
    )
    bowing = has("bowing")

    seen = latest(case, "skeletal-maturity")
    immature: Tri = seen.value == "immature" if seen else below(ages, maturity_age)
    mature = t_not(immature)
    young_adult = t_and(mature, below(ages, 30))

    amb = latest(case, "ambulatory-status")
    functional = amb.value if amb and amb.when >= add_months(at, -24) else None
    needs_aid = functional in ("with-aids", "wheelchair", "non-ambulatory")

    canal = _smallest_canal(case)
    size = "unknown" if canal is None else "small" if canal < 3.2 else "fits"
    on_bp = active_bisphosphonate(case)

    rules: dict[str, Tri] = {
        "activity-guidance-mild": mild,
        "fracture-care": recent,
        "rehabilitation": modsev,
        "orthopedic-evaluation": modsev,
        "mobility-support": t_or(needs_aid, t_and(modsev, functional is None)),
        "bisphosphonate-therapy": t_and(minor, not on_bp, t_or(modsev, recurrent)),
        "bisphosphonate-continue": on_bp,
        "rod-osteotomy-bowing": t_and(severe, bowing),
        "deformity-correction-child": t_and(bowing, immature),
        "deformity-correction-young-adult": t_and(bowing, young_adult),
        "prophylactic-rod-telescoping": t_and(minor, recurrent, immature, size != "small"),
        "prophylactic-rod-non-telescoping": t_and(minor, recurrent, t_or(mature, size == "small")),
        "spine-deformity": has("scoliosis", "kyphoscoliosis"),
        "basilar-invagination": has("basilar-invagination"),
        "spinal-fracture": has("fracture-vertebra"),
        "missing-facts": sev is None
        or ages is None
        or None in (below(ages, 18), below(ages, maturity_age), below(ages, 30)),
    }
    return {key for key, holds in rules.items() if holds is True}, Derived(True, immature, bowing)
