"""Facts of age and growth: read from Patient.birthDate (and an observed skeletal maturity)."""

from __future__ import annotations

from services.plan_builder import dates
from services.plan_builder.facts.base import FactValue, Missing, Record, dedupe, tri_and
from services.plan_builder.facts.observations import VS_MATURITY, latest

ADULT_AGE = 18  # the contract's "age < 18"; not a site setting


def read_age_low(record: Record) -> FactValue:
    """Age in whole years at the earliest birth date the record allows."""
    missing: tuple[Missing, ...] = ()
    if record.birth is None:
        raw = record.patient.get("birthDate")
        text = "birth date not recorded (age unknown)" if not raw else "birth date unusable (age unknown)"
        missing = (Missing("birthDate", text, ("ageUnder18", "skeletallyImmature", "youngAdult")),)
    return FactValue(record.age_low, missing=missing)


def read_age_high(record: Record) -> FactValue:
    return FactValue(record.age_high)


def _straddles(record: Record, threshold: int, label: str, fact: str) -> tuple[Missing, ...]:
    """A partial birth date whose age range straddles a threshold leaves the fact undecided."""
    if record.birth is None or dates.below(record.age_low, record.age_high, threshold) is not None:
        return ()
    raw = record.patient.get("birthDate")
    text = f"birth date is partial ({raw}): age {record.age_low}-{record.age_high} years straddles {label}"
    return (Missing("birthDate", text, (fact,)),)


def read_age_under_18(record: Record) -> FactValue:
    return FactValue(
        record.below(ADULT_AGE),
        record.cited(),
        missing=_straddles(record, ADULT_AGE, "age 18", "ageUnder18"),
    )


def read_skeletally_immature(record: Record) -> FactValue:
    """An observed skeletal maturity, else age below the site's maturity age for the sex."""
    maturity_age = record.settings.maturity_age(record.patient.get("gender"))
    missing = _straddles(
        record, maturity_age, f"the skeletal-maturity age {maturity_age}", "skeletallyImmature"
    )
    observed = latest(record, VS_MATURITY)
    if observed is not None:
        return FactValue(
            observed.value == "immature",
            dedupe([observed.ref, record.patient_ref]),
            missing=missing,
            detail={"source": "observed", "maturity_age": maturity_age, "observation": observed.ref},
        )
    value = record.below(maturity_age)
    return FactValue(
        value,
        record.cited(),
        missing=missing,
        detail={"source": "age" if value is not None else None, "maturity_age": maturity_age},
    )


def read_young_adult(record: Record) -> FactValue:
    """Skeletally mature and below the site's young-adult age limit."""
    limit = record.settings.young_adult_age_limit
    immature = record.fact("skeletallyImmature")
    mature = None if immature.value is None else not immature.value
    return FactValue(
        tri_and(mature, record.below(limit)),
        dedupe([record.patient_ref, immature.detail.get("observation")]),
        missing=_straddles(record, limit, f"the young-adult limit {limit}", "youngAdult"),
    )
