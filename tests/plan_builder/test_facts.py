"""PatientFacts: partial dates, missing fields, several OI Conditions, evidence and notes."""

from __future__ import annotations

from datetime import date

from services.plan_builder import Planner
from tests.fhir_builders import condition as c
from tests.fhir_builders import medication as m
from tests.fhir_builders import observation as o
from tests.fhir_builders import patient

AT = date(2026, 6, 1)


def test_full_birth_date_gives_exact_age(planner: Planner) -> None:
    facts = planner.facts(patient(birth="2016-06-02"), [], AT)
    assert (facts.age_low, facts.age_high) == (9, 9)
    facts = planner.facts(patient(birth="2016-06-01"), [], AT)
    assert (facts.age_low, facts.age_high) == (10, 10)


def test_partial_birth_dates_give_age_ranges(planner: Planner) -> None:
    assert (lambda f: (f.age_low, f.age_high))(planner.facts(patient(birth="2015"), [], AT)) == (10, 11)
    assert (lambda f: (f.age_low, f.age_high))(planner.facts(patient(birth="2015-06"), [], AT)) == (10, 11)
    assert (lambda f: (f.age_low, f.age_high))(planner.facts(patient(birth="2015-04"), [], AT)) == (11, 11)


def test_birth_year_of_evaluation_is_age_zero(planner: Planner) -> None:
    facts = planner.facts(patient(birth="2026"), [], AT)
    assert (facts.age_low, facts.age_high) == (0, 0)
    assert facts.age_under_18 is True


def test_missing_birth_date_leaves_age_facts_undecided(planner: Planner) -> None:
    facts = planner.facts(patient(birth=None), [c("oi-type-1")], AT)
    assert facts.age_under_18 is None
    assert facts.skeletally_immature is None
    assert facts.young_adult is None
    assert facts.missing_facts
    assert [m.fact for m in facts.missing] == ["birthDate"]


def test_future_birth_date_is_noted_and_ignored(planner: Planner) -> None:
    facts = planner.facts(patient(birth="2027-01-01"), [c("oi-type-1")], AT)
    assert facts.birth_date is None
    assert any("after the evaluation date" in n for n in facts.notes)
    assert facts.missing_facts


def test_observed_maturity_beats_age_and_is_cited(planner: Planner) -> None:
    obs = o("skeletal-maturity", "mature")
    facts = planner.facts(patient(birth="2018-01-01"), [c("oi-type-1"), obs], AT)
    assert facts.skeletally_immature is False
    assert facts.skeletal_maturity_source == "observed"
    assert f"Observation/{obs['id']}" in facts.evidence["skeletallyImmature"]


def test_maturity_age_threshold_per_sex(planner: Planner) -> None:
    for gender, born, immature in [
        ("female", "2012-06-02", True),  # 13
        ("female", "2012-06-01", False),  # 14
        ("male", "2010-06-02", True),  # 15
        ("male", "2010-06-01", False),  # 16
        ("other", "2011-06-02", True),  # 14
        ("unknown", "2011-06-01", False),  # 15
    ]:
        facts = planner.facts(patient(birth=born, gender=gender), [], AT)
        assert facts.skeletally_immature is immature, (gender, born)


def test_several_oi_conditions_most_severe_type_wins_with_note(planner: Planner) -> None:
    facts = planner.facts(patient(), [c("oi-type-1"), c("oi-type-3")], AT)
    assert facts.severity == "severe"
    assert facts.severity_source == "type"
    assert any("disagree on severity" in n for n in facts.notes)
    assert set(facts.oi_types) == {"OI type I", "OI type III"}


def test_explicit_severity_beats_type_on_another_condition(planner: Planner) -> None:
    facts = planner.facts(patient(), [c("oi-type-3"), c("oi", severity="mild")], AT)
    assert (facts.severity, facts.severity_source) == ("mild", "explicit")


def test_conflicting_explicit_severities_most_severe_wins(planner: Planner) -> None:
    facts = planner.facts(patient(), [c("oi", severity="mild"), c("oi", severity="severe")], AT)
    assert facts.severity == "severe"
    assert any("disagree" in n for n in facts.notes)


def test_severity_text_without_code(planner: Planner) -> None:
    oi = c("oi")
    oi["severity"] = {"text": "Moderate"}
    facts = planner.facts(patient(), [oi], AT)
    assert facts.severity == "moderate"


def test_provisional_oi_type_does_not_set_severity(planner: Planner) -> None:
    facts = planner.facts(patient(), [c("oi-type-1"), c("oi-type-3", verification="provisional")], AT)
    assert facts.severity == "mild"


def test_future_onset_is_noted_and_falls_back(planner: Planner) -> None:
    fracture = c("fracture-femur", "2026-07-01", recordedDate="2026-05-30")
    facts = planner.facts(patient(), [c("oi-type-1"), fracture], AT)
    assert facts.fractures[0].onset is not None
    assert facts.fractures[0].onset.start == date(2026, 5, 30)
    assert any("after the evaluation date" in n for n in facts.notes)


def test_negative_onset_age_is_read_as_before_birth_and_noted(planner: Planner) -> None:
    # FHIR's Age is never negative; the contract's birthDate + onsetAge still dates it
    age = {"value": -2, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"}
    newborn = patient(birth="2026-05-25")
    facts = planner.facts(newborn, [c("oi-type-3"), c("fracture-femur", None, onsetAge=age)], AT)
    assert facts.fractures[0].onset is not None
    assert facts.fractures[0].onset.start == date(2026, 5, 11)
    assert any("onsetAge is negative" in n for n in facts.notes)
    one_week = c("fracture-femur", None, onsetAge={**age, "value": 1})
    plain = planner.facts(newborn, [c("oi-type-3"), one_week], AT)
    assert not any("onsetAge" in n for n in plain.notes)


def test_partial_onset_straddling_window_is_undecided(planner: Planner) -> None:
    # 2026-04 runs from 42+ days ago into the window: recent is undecided, not guessed
    facts = planner.facts(patient(), [c("oi-type-1"), c("fracture-femur", "2026-04")], AT)
    assert facts.recent_long_bone_fracture is None
    result = planner.plan(patient(), [c("oi-type-1"), c("fracture-femur", "2026-04")], AT)
    assert "fracture-care" not in result.keys
    assert any(w.key == "fracture-care" for w in result.withheld)
    assert any("fracture-care" in n for n in result.notes)
    assert "missing-facts" not in result.keys  # the contract's missing-facts triggers only


def test_partial_onset_counts_towards_recurrent_when_certain(planner: Planner) -> None:
    facts = planner.facts(patient(), [c("fracture-femur", "2026-01"), c("fracture-tibia", "2025-10")], AT)
    assert facts.recurrent_long_bone_fractures is True
    undecided = planner.facts(patient(), [c("fracture-femur", "2026-01"), c("fracture-tibia", "2025")], AT)
    assert undecided.recurrent_long_bone_fractures is None


def test_observation_dates_fall_back_to_period_end_then_issued(planner: Planner) -> None:
    by_period = o(
        "ambulatory-status", "wheelchair", None, effectivePeriod={"start": "2020-01-01", "end": "2026-01-01"}
    )
    assert planner.facts(patient(), [by_period], AT).functional_status == "wheelchair"
    by_issued = o("ambulatory-status", "with-aids", None, issued="2026-02-01T10:00:00Z")
    assert planner.facts(patient(), [by_issued], AT).functional_status == "with-aids"
    undated = o("ambulatory-status", "with-aids", None)
    assert planner.facts(patient(), [undated], AT).functional_status is None


def test_future_observation_ignored(planner: Planner) -> None:
    facts = planner.facts(patient(), [o("ambulatory-status", "wheelchair", "2026-06-02")], AT)
    assert facts.functional_status is None
    assert facts.notes


def test_unknown_observation_value_is_noted(planner: Planner) -> None:
    facts = planner.facts(patient(), [o("ambulatory-status", "crawls")], AT)
    assert facts.functional_status is None
    assert any("not recognised" in n for n in facts.notes)


def test_canal_diameter_in_unknown_unit_is_ignored(planner: Planner) -> None:
    obs = o("medullary-canal-diameter", 3.0, valueQuantity={"value": 3.0, "unit": "in"})
    facts = planner.facts(patient(), [obs], AT)
    assert facts.bone_size == "unknown"
    assert any("unit" in n for n in facts.notes)


def test_bisphosphonate_partial_completed_date_is_undecided(planner: Planner) -> None:
    facts = planner.facts(patient(), [m("pamidronate", status="completed", date="2025-12")], AT)
    assert facts.active_bisphosphonate is True  # all of December 2025 is within 6 months
    facts = planner.facts(patient(), [m("pamidronate", status="completed", date="2025-11")], AT)
    assert facts.active_bisphosphonate is False
    facts = planner.facts(patient(), [m("pamidronate", status="completed", date="2025")], AT)
    assert facts.active_bisphosphonate is None


def test_statement_completed_uses_effective_period(planner: Planner) -> None:
    stmt = m(
        "alendronate",
        status="completed",
        kind="MedicationStatement",
        effectivePeriod={"start": "2025-01-01", "end": "2026-03-01"},
    )
    assert planner.facts(patient(), [stmt], AT).active_bisphosphonate is True


def test_drug_recognised_by_medication_reference_display(planner: Planner) -> None:
    med = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "Medication/x", "display": "Zoledronate 4 mg"},
        "subject": {"reference": "Patient/p1"},
    }
    assert planner.facts(patient(), [med], AT).active_bisphosphonate is True


def test_evidence_names_the_triggering_resources(planner: Planner) -> None:
    oi = c("oi-type-3")
    fracture = c("fracture-femur", "2026-05-20")
    facts = planner.facts(patient(), [oi, fracture], AT)
    assert facts.evidence["oi"] == (f"Condition/{oi['id']}",)
    assert facts.evidence["recentLongBoneFracture"] == (f"Condition/{fracture['id']}",)
    assert facts.fractures[0].bone == "Fracture of femur"


def test_facts_are_immutable(planner: Planner) -> None:
    import dataclasses

    import pytest

    facts = planner.facts(patient(), [c("oi-type-1")], AT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.oi = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        facts.evidence["oi"] = ()  # type: ignore[index]


def test_lazy_validation_reads_only_what_matters(planner: Planner) -> None:
    import pytest

    from services.plan_builder.errors import PlanInputError

    unrelated = {**c("unknown"), "onsetDateTime": "garbage"}  # unknown code: only its code is read
    facts = planner.facts(patient(), [c("oi-type-1"), unrelated], AT, validate=True)
    assert facts.oi
    relevant = {**c("fracture-femur"), "onsetDateTime": "garbage"}
    with pytest.raises(PlanInputError, match="onsetDateTime"):
        planner.facts(patient(), [c("oi-type-1"), relevant], AT, validate=True)
    with pytest.raises(PlanInputError, match=r"Condition\.code"):
        planner.facts(patient(), [{**c("oi"), "code": "Q78.0"}], AT, validate=True)
    with pytest.raises(PlanInputError, match=r"Observation\.status"):
        planner.facts(
            patient(), [{**o("ambulatory-status", "independent"), "status": ["final"]}], AT, validate=True
        )
    with pytest.raises(PlanInputError, match=r"Patient\.birthDate"):
        planner.facts(patient(birth="June"), [], AT, validate=True)
