"""Random records through the planner and through tests/clinical/contract.py (the contract read a
second time): the keys must agree. Dates cluster at the contract's edges (42 days, 12 and 24
months, the age thresholds, 29 February) where a reading is most easily off by one."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.cds_hooks.cards import order_cards, patient_view_cards
from services.plan_builder import Planner
from services.plan_builder.orders import OrderChecker
from tests.cds_hooks.cds_rules import assert_conformant_response
from tests.clinical.contract import (
    EXPLICIT,
    OI_TYPES,
    Case,
    Cond,
    Med,
    Obs,
    add_months,
    expected_keys,
    rod_order_keys,
    whole_years,
)
from tests.fhir_builders import PROC, condition, medication, observation, patient, service_request

UCUM = "http://unitsofmeasure.org"
DAYS = [0, 1, 30, 41, 42, 43, 200, 800, -1]  # -1: after the evaluation date
FINDINGS = [
    "fracture-femur",
    "fracture-tibia",
    "fracture-humerus",
    "fracture-femur-icd",
    "fracture-femur-icd-followup",
    "fracture-clavicle-icd",
    "fracture-vertebra",
    "bowing",
    "scoliosis",
    "kyphoscoliosis",
    "basilar-invagination",
]
CLINICAL = [None, "active", "recurrence", "relapse", "inactive", "remission", "resolved"]
VERIFICATION = [None, "confirmed", "provisional", "differential", "unconfirmed", "refuted"]
VERIFICATION.append("entered-in-error")
ONSET_FIELDS = ["onsetDateTime", "onsetPeriod", "recordedDate", "onsetAge"]
OBSERVATION_DATES = ["effectiveDateTime", "effectivePeriod", "issued"]


@st.composite
def when(draw: st.DrawFn, at: date) -> date | None:
    """None, some days back, or on either side of 12 months back."""
    kind = draw(st.sampled_from(["none", "days", "months"]))
    if kind == "none":
        return None
    if kind == "days":
        return at - timedelta(days=draw(st.sampled_from(DAYS)))
    return add_months(at, -12) + timedelta(days=draw(st.sampled_from([-1, 0, 1])))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Case, list[str]]:
    at = draw(st.sampled_from([date(2026, 6, 1), date(2028, 2, 29), date(2027, 3, 1), date(2026, 12, 31)]))
    born = date(at.year - draw(st.sampled_from([0, 1, 5, 13, 14, 15, 16, 17, 18, 29, 30, 40])), 1, 1)
    born += timedelta(days=(at - date(at.year, 1, 1)).days + draw(st.sampled_from([-1, 0, 1, 100])))
    born = min(born, at)
    birth = draw(st.sampled_from([None, born.isoformat(), born.isoformat()[:7], born.isoformat()[:4]]))
    case = Case(at, birth, draw(st.sampled_from(["female", "male", "other", "unknown", None])))
    for i in range(draw(st.integers(1, 2))):
        usual = i == 0 and draw(st.integers(0, 4)) > 0  # most records: one plain OI diagnosis
        case.conditions.append(
            Cond(
                draw(st.sampled_from([*OI_TYPES, "pseudoglioma"])),
                severity=draw(st.sampled_from([None, None, *EXPLICIT])),
                clinical="active" if usual else draw(st.sampled_from(CLINICAL)),
                verification="confirmed" if usual else draw(st.sampled_from(VERIFICATION)),
            )
        )
    onset_fields = []
    for _ in range(draw(st.integers(0, 4))):
        usual = draw(st.booleans())
        case.conditions.append(
            Cond(
                draw(st.sampled_from(FINDINGS + FINDINGS[:4])),  # long-bone fractures twice as often
                onset=draw(when(at)),
                clinical="active" if usual else draw(st.sampled_from(CLINICAL)),
                verification="confirmed" if usual else draw(st.sampled_from(VERIFICATION)),
            )
        )
        where = draw(st.sampled_from(ONSET_FIELDS))
        finding = case.conditions[-1]
        if where == "onsetAge":
            # FHIR's Age is never negative (age-1): an onset before birth is stated as a date
            if birth is None or len(birth) < 10 or finding.onset is None or finding.onset < born:
                where = "onsetDateTime"
            else:  # an age in whole years: the onset is a birthday
                finding.onset = add_months(born, 12 * whole_years(born, finding.onset))
        onset_fields.append(where)
    questions: dict[str, list[Any]] = {
        "ambulatory-status": ["independent", "with-aids", "wheelchair", "non-ambulatory"],
        "skeletal-maturity": ["mature", "immature"],
        "medullary-canal-diameter": [2.0, 3.1, 3.2, 3.3, 6.0],
    }
    for question, values in questions.items():
        # distinct dates: which of two on one day wins is not the contract's
        for months in draw(st.lists(st.sampled_from([0, 1, 23, 24, 25, 30]), max_size=2, unique=True)):
            case.observations.append(
                Obs(
                    question,
                    draw(st.sampled_from(values)),
                    add_months(at, -months),
                    draw(st.sampled_from(["final", "amended", "preliminary", "cancelled"])),
                    draw(st.sampled_from([None, "left femur", "right tibia"])),
                    draw(st.sampled_from(OBSERVATION_DATES)),
                )
            )
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["MedicationRequest", "MedicationStatement"]))
        statuses = ["active", "completed", "stopped", "entered-in-error"]
        statuses += ["on-hold", "cancelled"] if kind == "MedicationRequest" else []
        days = draw(st.sampled_from([None, 10, 150, 200, 400]))  # 6 months: no day on its edge
        case.medications.append(
            Med(
                draw(st.sampled_from(["pamidronate", "alendronate", "zoledronic acid", "calcium carbonate"])),
                draw(st.sampled_from(statuses)),
                kind,
                None if days is None else at - timedelta(days=days),
            )
        )
    return case, onset_fields


def to_fhir(case: Case, onset_fields: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    record: list[dict[str, Any]] = []
    findings = iter(onset_fields)
    for c in case.conditions:
        extra: dict[str, Any] = {}
        if c.concept not in OI_TYPES and c.concept != "pseudoglioma":
            where = next(findings)
            if c.onset is not None and where == "onsetAge":
                years = whole_years(date.fromisoformat(case.birth or ""), c.onset)
                extra[where] = {"value": years, "unit": "a", "system": UCUM, "code": "a"}
            elif c.onset is not None:
                text = c.onset.isoformat()
                extra[where] = {"start": text} if where == "onsetPeriod" else text
        extra.update(severity=c.severity, clinical=c.clinical, verification=c.verification)
        record.append(condition(c.concept, **extra))
    for o in case.observations:
        site: dict[str, Any] = {"bodySite": {"text": o.bone}} if o.bone else {}
        text = o.when.isoformat()
        dated = {"effectivePeriod": {"end": text}, "issued": f"{text}T12:00:00Z"}.get(o.dated, text)
        site[o.dated] = dated
        record.append(observation(o.question, o.value, None, status=o.status, **site))
    for m in case.medications:
        record.append(medication(m.name, m.status, kind=m.kind, date=m.when.isoformat() if m.when else None))
    person = patient(birth=case.birth, gender=case.gender) if case.gender else patient(birth=case.birth)
    if not case.gender:
        del person["gender"]
    return person, record


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=cases())
def test_planner_keys_are_the_contracts(drawn: tuple[Case, list[str]], planner: Planner) -> None:
    case, onset_fields = drawn
    person, record = to_fhir(case, onset_fields)
    result = planner.plan(person, record, case.at, validate=True)
    assert set(result.keys) == expected_keys(case), (case, result.notes)


RODS = {  # what a drafted rod is called -> telescoping
    "Fassier-Duval telescoping rod, femur": True,
    "Bailey-Dubow rod": True,
    "Sheffield rod insertion": True,
    "Williams rod": False,
    "Rush nail": False,
    "Kirschner wire fixation": False,
    "Steinmann pin": False,
}


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=cases(),
    rod=st.sampled_from(sorted(RODS)),
    by_code=st.booleans(),
    bone=st.sampled_from([None, "left femur", "Right Tibia", "humerus"]),
)
def test_rod_order_cards_are_the_contracts(
    drawn: tuple[Case, list[str]],
    rod: str,
    by_code: bool,
    bone: str | None,
    planner: Planner,
    checker: OrderChecker,
) -> None:
    case, onset_fields = drawn
    person, record = to_fhir(case, onset_fields)
    telescoping = RODS[rod]
    code = (PROC, "rod-telescoping" if telescoping else "rod-non-telescoping") if by_code else None
    site: dict[str, Any] = {"bodySite": [{"text": bone}]} if bone else {}
    order = service_request(rod, code, **site)
    facts = planner.facts(person, record, case.at, validate=True)
    keys = {f.key for f in checker.check([order], facts)}
    assert keys == rod_order_keys(case, telescoping, bone), (case, rod, bone)


OWN_CARDS = {  # the contract's "own card" column
    "fracture-care": "warning",
    "basilar-invagination": "warning",
    "spinal-fracture": "warning",
    "missing-facts": "info",
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=cases())
def test_patient_view_cards_are_the_contracts(drawn: tuple[Case, list[str]], planner: Planner) -> None:
    """One summary card listing every key with the draft CarePlan (valid FHIR), and a card of
    its own, with the contract's indicator, for each own-card key; nothing for no OI."""
    case, onset_fields = drawn
    person, record = to_fhir(case, onset_fields)
    result = planner.plan(person, record, case.at, patient_ref="Patient/p1", validate=True)
    body = {"cards": patient_view_cards(result, [], [], planner.plan_definition.version)}
    assert_conformant_response(body)
    keys = expected_keys(case)
    if not keys:
        assert body["cards"] == []
        return
    summary, *own = body["cards"]
    assert summary["source"]["topic"]["code"] == "careplan-summary"
    assert summary["indicator"] == "info"
    assert all(f"({key})" in summary["detail"] for key in keys)
    [suggestion] = summary["suggestions"]
    careplan = suggestion["actions"][0]["resource"]
    assert {a["detail"]["code"]["coding"][0]["code"] for a in careplan["activity"]} == keys
    own_cards = {c["source"]["topic"]["code"]: c["indicator"] for c in own}
    assert own_cards == {k: OWN_CARDS[k] for k in keys if k in OWN_CARDS}


# drafted drugs as EHRs name them -> the contract's drug group (None: no group)
DRUGS = {
    "Pamidronate disodium 3 MG/ML Injection": "bisphosphonate",
    "alendronate sodium 70 mg / cholecalciferol 2800 unit tablet": "bisphosphonate",
    "zoledronic acid 5 mg/100 mL": "bisphosphonate",
    "Estradiol 1 MG Oral Tablet": "sex hormone",
    "medroxyprogesterone acetate 150 MG/ML": "sex hormone",
    "oxandrolone 2.5 mg": "sex hormone",
    "Sodium Fluoride 1 MG Oral Tablet": "sodium fluoride",
    "Sodium fluoride 1.1% dental gel": None,
    "sodium fluoride varnish": None,
    "Calcium carbonate 500 mg / Vitamin D3 400 unit": "calcium",
    "calcium gluconate 10% injection": "calcium",
    "calcitonin salmon 200 unit nasal spray": "calcitonin",
    "calcitriol 0.25 mcg capsule": "vitamin D",
    "Magnesium oxide 400 MG": "magnesium oxide",
    "ascorbic acid 500 mg": "vitamin C",
    "Vitamin D3 1000 unit tablet": "vitamin D",
    "ergocalciferol 50000 unit": "vitamin D",
    "denosumab 60 MG/ML": "not approved",
    "teriparatide 20 mcg": "not approved",
    "romosozumab 105 mg": "investigational",
    "fresolimumab": "investigational",
    "ibuprofen 100 mg": None,
    "magnesium citrate 1.745 g": None,
}
KEY_OF_GROUP = {
    "bisphosphonate": ("order-bisphosphonate-supported", "info"),
    "not approved": ("order-not-approved", "warning"),
    "investigational": ("order-investigational", "warning"),
}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=cases(), drug=st.sampled_from(sorted(DRUGS)), topical=st.booleans())
def test_drug_order_cards_are_the_contracts(
    drawn: tuple[Case, list[str]], drug: str, topical: bool, planner: Planner, checker: OrderChecker
) -> None:
    """The card a drafted drug gets, its indicator, and what it offers: removal only for the
    warnings, the two bisphosphonate proposals where bisphosphonate-therapy holds."""
    case, onset_fields = drawn
    person, record = to_fhir(case, onset_fields)
    order = medication(drug, "draft")
    group = DRUGS[drug]
    if topical:  # a dental or topical route takes sodium fluoride out of its group, nothing else
        order["dosageInstruction"] = [{"route": {"text": "Topical route"}}]
        group = None if group == "sodium fluoride" else group
    result = planner.plan(person, record, case.at, validate=True, careplan=False)
    cards = order_cards(checker.check([order], result.facts), result.keys, "Patient/p1")
    keys = expected_keys(case)
    if not keys or group is None:
        assert cards == []
        return
    key, indicator = KEY_OF_GROUP.get(group, ("order-no-or-mixed-evidence", "info"))
    [card] = cards
    assert (card["source"]["topic"]["code"], card["indicator"]) == (key, indicator)
    offered = [s["actions"][-1] for s in card.get("suggestions", [])]
    removal = [a for a in offered if a["type"] == "delete"]
    proposals = [a["resource"]["resourceType"] for a in offered if a["type"] == "create"]
    assert len(removal) == (indicator == "warning")
    wanted = "bisphosphonate-therapy" in keys and key != "order-bisphosphonate-supported"
    assert proposals == (["MedicationRequest"] * 2 if wanted else [])
    assert bool(card.get("overrideReasons")) == (indicator == "warning")
