"""Facts read from Observations: functional status, observed skeletal maturity, bone size.

Which Observations are read, and how their values are read (a coded answer, or a length in mm),
comes from the specs' ``ObservationRead``: a new Observation fact needs no change here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from services.plan_builder import dates
from services.plan_builder.dates import DateRange
from services.plan_builder.facts.base import UNKNOWN, FactValue, ObservationRead, Record, resource_ref
from services.plan_builder.site import ANSWER_BOOLEAN, ANSWER_TEXT, text_code
from services.plan_builder.terminology import Terminology
from services.plan_builder.types import JSON

FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
VS_AMBULATORY = "ambulatory-status"
VS_AMBULATORY_VALUE = "ambulatory-status-value"
VS_MATURITY = "skeletal-maturity"
VS_MATURITY_VALUE = "skeletal-maturity-value"
VS_CANAL = "medullary-canal-diameter"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
_MM_FACTOR = {"mm": 1.0, "cm": 10.0}


class Obs(NamedTuple):
    """One usable Observation: when, which, its value as read, and its place in the input."""

    when: DateRange
    ref: str | None
    value: Any
    position: int  # in the input: the later of two on one day wins
    resource: JSON

    @property
    def order(self) -> tuple[Any, int]:
        return (self.when.start, self.position)


def read_observations(record: Record, reads: Sequence[ObservationRead]) -> None:
    """Final Observations of a question some fact reads, dated and with a recognised value."""
    term = record.terminology
    for index, obs in enumerate(record.by_type.get("Observation", [])):
        record.peek(obs, "status", "code")
        if obs.get("status") not in FINAL_OBSERVATION:
            continue
        vsets = term.coded(obs.get("code"))
        read = next((r for r in reads if r.question in vsets), None)
        if read is None:
            continue
        record.check(obs)
        ref = resource_ref(obs)
        when = _observation_date(obs, ref, record)
        if when is None:
            continue
        value: Any
        if read.answers is None:
            value = _millimetres(obs.get("valueQuantity"), ref, record)
        else:
            value = _answer(obs, term, read.answers, read.question)
        if value is None:
            record.notes.append(f"{ref or 'an Observation'}: value not recognised; ignored")
            continue
        record.observations.setdefault(read.question, []).append(Obs(when, ref, value, index, obs))


def latest(record: Record, question: str) -> Obs | None:
    found = record.observations.get(question)
    return max(found, key=lambda o: o.order) if found else None


def read_functional_status(record: Record) -> FactValue:
    """The latest ambulatory status, when recorded within the site's window."""
    found = latest(record, VS_AMBULATORY)
    if found is None:
        return UNKNOWN
    months = record.settings.functional_status_max_age_months
    if found.when.start >= dates.add_months(record.at, -months):
        return FactValue(found.value, (found.ref,) if found.ref else ())
    note = (
        f"{found.ref or 'an Observation'}: ambulatory status dated {found.when} is older "
        f"than {months} months; functional status unknown"
    )
    return FactValue(None, notes=(note,))


def read_bone_size(record: Record) -> FactValue:
    """Small when the narrowest measured medullary canal is below the smallest telescoping rod."""
    if VS_CANAL not in record.observations:
        return _NOT_MEASURED
    by_site: dict[str, Obs] = {}
    for item in record.observations.get(VS_CANAL, ()):
        key = site_key(item.resource)
        if key not in by_site or item.order > by_site[key].order:
            by_site[key] = item
    canal_by_site = tuple((key, float(item.value)) for key, item in by_site.items())
    canal = min((v for _, v in canal_by_site), default=None)
    size = "unknown"
    if canal is not None:
        size = "small" if canal < record.settings.smallest_telescoping_rod_mm else "fits"
    evidence = tuple(i.ref for i in by_site.values() if i.ref)
    return FactValue(size, evidence, detail={"by_site": canal_by_site, "mm": canal})


_NOT_MEASURED = FactValue("unknown", detail={"by_site": (), "mm": None})


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


def _observation_date(obs: JSON, ref: str | None, record: Record) -> DateRange | None:
    """effectiveDateTime, else effectivePeriod.end, else issued."""
    if obs.get("effectiveDateTime"):
        return record.dated(ref, "effectiveDateTime", obs["effectiveDateTime"], dates.parse_datetime)
    end = (obs.get("effectivePeriod") or {}).get("end")
    if end:
        return record.dated(ref, "effectivePeriod.end", end, dates.parse_datetime)
    return record.dated(ref, "issued", obs.get("issued"), dates.parse_datetime)


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


def _millimetres(quantity: JSON | None, ref: str | None, record: Record) -> float | None:
    if not quantity or quantity.get("value") is None:
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
    if unit.lower() in _MM_FACTOR:
        return float(quantity["value"]) * _MM_FACTOR[unit.lower()]
    for t in record.terminology.translate(str(quantity.get("system") or ""), unit)[1:]:
        if t.system == UCUM and t.code in _MM_FACTOR:
            return float(quantity["value"]) * (t.factor or 1.0) * _MM_FACTOR[t.code]
    record.notes.append(f"{ref or 'an Observation'}: medullary canal diameter unit {unit!r} is not mm or cm")
    return None
