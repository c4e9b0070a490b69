"""Each recommendation key: positive, negative and boundary cases, straight from the contract.

Evaluation date 2026-06-01 unless a case says otherwise.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.plan_builder import Planner
from tests.fhir_builders import condition as c
from tests.fhir_builders import medication as m
from tests.fhir_builders import observation as o
from tests.fhir_builders import patient

AT = date(2026, 6, 1)
CHILD = patient(birth="2016-01-01", gender="male")  # 10 years
TEEN_F14 = patient(birth="2012-01-01", gender="female")  # 14: mature by default
BOY15 = patient(birth="2011-01-01", gender="male")  # 15: immature by default
ADULT22 = patient(birth="2004-01-01")
ADULT35 = patient(birth="1991-01-01")
NO_BIRTH = patient(birth=None)
TWO_RECENT = (c("fracture-femur", "2025-09-01"), c("fracture-tibia", "2026-02-01"))

# (id, patient, resources, present, absent[, at])
CASES: list[tuple[Any, ...]] = [
    # activity-guidance-mild
    ("mild-type-i", CHILD, [c("oi-type-1")], {"activity-guidance-mild"}, {"rehabilitation", "missing-facts"}),
    (
        "mild-explicit-on-generic-oi",
        CHILD,
        [c("oi", severity="mild")],
        {"activity-guidance-mild"},
        {"missing-facts"},
    ),
    (
        "type-i-explicit-severe",
        CHILD,
        [c("oi-type-1", severity="severe")],
        {"rehabilitation"},
        {"activity-guidance-mild"},
    ),
    (
        "unknown-type-withholds",
        CHILD,
        [c("oi")],
        {"missing-facts"},
        {
            "activity-guidance-mild",
            "rehabilitation",
            "orthopedic-evaluation",
            "mobility-support",
            "bisphosphonate-therapy",
        },
    ),
    ("icd-oi-unknown-type", CHILD, [c("oi-icd10")], {"missing-facts"}, {"activity-guidance-mild"}),
    # fracture-care: 42 days inclusive
    (
        "fracture-42-days",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", "2026-04-20")],
        {"fracture-care"},
        set(),
    ),
    (
        "fracture-43-days",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", "2026-04-19")],
        set(),
        {"fracture-care"},
    ),
    (
        "fracture-today-datetime",
        CHILD,
        [c("oi-type-1"), c("fracture-humerus", "2026-06-01T08:30:00+02:00")],
        {"fracture-care"},
        set(),
    ),
    ("fracture-no-onset", CHILD, [c("oi-type-1"), c("fracture-femur")], {"fracture-care"}, set()),
    (
        "fracture-resolved-not-present",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", "2026-05-20", clinical="resolved")],
        set(),
        {"fracture-care"},
    ),
    (
        "fracture-refuted",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", "2026-05-20", verification="refuted")],
        set(),
        {"fracture-care"},
    ),
    (
        "fracture-icd-initial",
        CHILD,
        [c("oi-type-1"), c("fracture-femur-icd", "2026-05-20")],
        {"fracture-care"},
        set(),
    ),
    (
        "fracture-icd-subsequent",
        CHILD,
        [c("oi-type-1"), c("fracture-femur-icd-followup", "2026-05-20")],
        set(),
        {"fracture-care"},
    ),
    (
        "fracture-clavicle-not-long",
        CHILD,
        [c("oi-type-1"), c("fracture-clavicle-icd", "2026-05-20")],
        set(),
        {"fracture-care"},
    ),
    (
        "vertebra-not-long-bone",
        CHILD,
        [c("oi-type-1"), c("fracture-vertebra", "2026-05-20")],
        {"spinal-fracture"},
        {"fracture-care"},
    ),
    (
        "onset-period-start",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", onsetPeriod={"start": "2026-05-25"})],
        {"fracture-care"},
        set(),
    ),
    (
        "onset-from-onset-age",
        patient(birth="2016-05-01"),
        [
            c("oi-type-1"),
            c(
                "fracture-femur",
                onsetAge={"value": 10, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
            ),
        ],
        {"fracture-care"},
        set(),
    ),
    (
        "onset-from-recorded-date",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", recordedDate="2026-05-30")],
        {"fracture-care"},
        set(),
    ),
    (
        "old-onset-beats-recorded",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", "2025-01-01", recordedDate="2026-05-30")],
        set(),
        {"fracture-care"},
    ),
    # rehabilitation / orthopedic-evaluation
    (
        "type-iv-moderate",
        CHILD,
        [c("oi-type-4")],
        {"rehabilitation", "orthopedic-evaluation"},
        {"activity-guidance-mild"},
    ),
    ("type-ivb-subtype", CHILD, [c("oi-type-4b")], {"rehabilitation"}, set()),
    ("type-iia-severe", CHILD, [c("oi-type-2a")], {"rehabilitation"}, set()),
    (
        "perinatal-lethal-severe",
        CHILD,
        [c("oi-perinatal-lethal")],
        {"rehabilitation", "orthopedic-evaluation"},
        {"missing-facts"},
    ),
    (
        "mild-to-moderate-is-moderate",
        CHILD,
        [c("oi", severity="mild-to-moderate")],
        {"rehabilitation"},
        {"activity-guidance-mild"},
    ),
    (
        "moderate-to-severe-is-severe",
        CHILD,
        [c("oi", severity="moderate-to-severe"), c("bowing")],
        {"rod-osteotomy-bowing"},
        set(),
    ),
    # mobility-support
    (
        "severe-independent",
        CHILD,
        [c("oi-type-3"), o("ambulatory-status", "independent")],
        set(),
        {"mobility-support"},
    ),
    (
        "mild-wheelchair",
        CHILD,
        [c("oi-type-1"), o("ambulatory-status", "wheelchair")],
        {"mobility-support"},
        set(),
    ),
    (
        "unknown-severity-with-aids",
        CHILD,
        [c("oi"), o("ambulatory-status", "with-aids")],
        {"mobility-support"},
        set(),
    ),
    ("moderate-unknown-function", CHILD, [c("oi-type-4")], {"mobility-support"}, set()),
    ("mild-unknown-function", CHILD, [c("oi-type-1")], set(), {"mobility-support"}),
    (
        "function-24-months-old-counts",
        CHILD,
        [c("oi-type-1"), o("ambulatory-status", "wheelchair", "2024-06-01")],
        {"mobility-support"},
        set(),
    ),
    (
        "function-older-than-24-months",
        CHILD,
        [c("oi-type-1"), o("ambulatory-status", "wheelchair", "2024-05-31")],
        set(),
        {"mobility-support"},
    ),
    (
        "stale-independent-severe",
        CHILD,
        [c("oi-type-3"), o("ambulatory-status", "independent", "2023-01-01")],
        {"mobility-support"},
        set(),
    ),
    (
        "latest-function-wins",
        CHILD,
        [
            c("oi-type-1"),
            o("ambulatory-status", "wheelchair", "2025-01-01"),
            o("ambulatory-status", "independent", "2026-01-01"),
        ],
        set(),
        {"mobility-support"},
    ),
    (
        "preliminary-function-ignored",
        CHILD,
        [c("oi-type-1"), o("ambulatory-status", "wheelchair", status="preliminary")],
        set(),
        {"mobility-support"},
    ),
    # bisphosphonate-therapy / -continue
    ("age-17-moderate", patient(birth="2009-01-01"), [c("oi-type-4")], {"bisphosphonate-therapy"}, set()),
    (
        "age-18-no-bisphosphonate",
        patient(birth="2008-06-01"),
        [c("oi-type-4")],
        set(),
        {"bisphosphonate-therapy"},
    ),
    ("mild-recurrent", CHILD, [c("oi-type-1"), *TWO_RECENT], {"bisphosphonate-therapy"}, set()),
    ("mild-one-fracture", CHILD, [c("oi-type-1"), TWO_RECENT[0]], set(), {"bisphosphonate-therapy"}),
    (
        "active-pamidronate",
        CHILD,
        [c("oi-type-4"), m("Pamidronate disodium 3 MG/ML Injectable Solution")],
        {"bisphosphonate-continue"},
        {"bisphosphonate-therapy"},
    ),
    (
        "on-hold-counts",
        CHILD,
        [c("oi-type-4"), m("zoledronic acid", status="on-hold")],
        {"bisphosphonate-continue"},
        {"bisphosphonate-therapy"},
    ),
    (
        "statement-active",
        CHILD,
        [c("oi-type-4"), m("Alendronate 70 mg", kind="MedicationStatement")],
        {"bisphosphonate-continue"},
        {"bisphosphonate-therapy"},
    ),
    (
        "completed-within-6-months",
        CHILD,
        [c("oi-type-4"), m("pamidronate", status="completed", date="2025-12-01")],
        {"bisphosphonate-continue"},
        {"bisphosphonate-therapy"},
    ),
    (
        "completed-over-6-months",
        CHILD,
        [c("oi-type-4"), m("pamidronate", status="completed", date="2025-11-30")],
        {"bisphosphonate-therapy"},
        {"bisphosphonate-continue"},
    ),
    (
        "completed-undated",
        CHILD,
        [c("oi-type-4"), m("pamidronate", status="completed")],
        {"bisphosphonate-therapy"},
        {"bisphosphonate-continue"},
    ),
    (
        "stopped-does-not-count",
        CHILD,
        [c("oi-type-4"), m("pamidronate", status="stopped")],
        {"bisphosphonate-therapy"},
        {"bisphosphonate-continue"},
    ),
    (
        "non-bisphosphonate-active",
        CHILD,
        [c("oi-type-4"), m("Vitamin D3 1000 unit tablet")],
        {"bisphosphonate-therapy"},
        {"bisphosphonate-continue"},
    ),
    (
        "adult-continue",
        ADULT35,
        [c("oi-type-1"), m("risedronate")],
        {"bisphosphonate-continue"},
        {"bisphosphonate-therapy"},
    ),
    # rod-osteotomy-bowing
    ("severe-bowing", CHILD, [c("oi-type-3"), c("bowing")], {"rod-osteotomy-bowing"}, set()),
    ("moderate-bowing", CHILD, [c("oi-type-4"), c("bowing")], set(), {"rod-osteotomy-bowing"}),
    ("severe-no-bowing", CHILD, [c("oi-type-3")], set(), {"rod-osteotomy-bowing"}),
    (
        "bowing-resolved",
        CHILD,
        [c("oi-type-3"), c("bowing", clinical="resolved")],
        set(),
        {"rod-osteotomy-bowing", "deformity-correction-child"},
    ),
    # deformity correction
    (
        "bowing-child",
        CHILD,
        [c("oi-type-1"), c("bowing")],
        {"deformity-correction-child"},
        {"deformity-correction-young-adult"},
    ),
    (
        "bowing-boy-15-immature",
        BOY15,
        [c("oi-type-1"), c("bowing")],
        {"deformity-correction-child"},
        {"deformity-correction-young-adult"},
    ),
    (
        "bowing-girl-14-mature",
        TEEN_F14,
        [c("oi-type-1"), c("bowing")],
        {"deformity-correction-young-adult"},
        {"deformity-correction-child"},
    ),
    (
        "bowing-young-adult",
        ADULT22,
        [c("oi-type-1"), c("bowing")],
        {"deformity-correction-young-adult"},
        {"deformity-correction-child"},
    ),
    (
        "bowing-age-30-not-young",
        patient(birth="1996-06-01"),
        [c("oi-type-1"), c("bowing")],
        set(),
        {"deformity-correction-young-adult", "deformity-correction-child"},
    ),
    (
        "bowing-age-29",
        patient(birth="1996-06-02"),
        [c("oi-type-1"), c("bowing")],
        {"deformity-correction-young-adult"},
        set(),
    ),
    (
        "observed-immature-at-20",
        patient(birth="2006-01-01"),
        [c("oi-type-1"), c("bowing"), o("skeletal-maturity", "immature")],
        {"deformity-correction-child"},
        {"deformity-correction-young-adult"},
    ),
    (
        "latest-maturity-wins",
        CHILD,
        [
            c("oi-type-1"),
            c("bowing"),
            o("skeletal-maturity", "immature", "2025-01-01"),
            o("skeletal-maturity", "mature", "2026-01-01"),
        ],
        {"deformity-correction-young-adult"},
        {"deformity-correction-child"},
    ),
    (
        "amended-maturity-counts",
        CHILD,
        [c("oi-type-1"), c("bowing"), o("skeletal-maturity", "mature", status="amended")],
        {"deformity-correction-young-adult"},
        set(),
    ),
    (
        "preliminary-maturity-ignored",
        CHILD,
        [c("oi-type-1"), c("bowing"), o("skeletal-maturity", "mature", status="preliminary")],
        {"deformity-correction-child"},
        {"deformity-correction-young-adult"},
    ),
    # prophylactic rods
    (
        "rod-telescoping-unknown-size",
        CHILD,
        [c("oi-type-1"), *TWO_RECENT],
        {"prophylactic-rod-telescoping"},
        {"prophylactic-rod-non-telescoping"},
    ),
    (
        "rod-size-equal-threshold",
        CHILD,
        [c("oi-type-1"), *TWO_RECENT, o("medullary-canal-diameter", 3.2)],
        {"prophylactic-rod-telescoping"},
        {"prophylactic-rod-non-telescoping"},
    ),
    (
        "rod-size-below-threshold",
        CHILD,
        [c("oi-type-1"), *TWO_RECENT, o("medullary-canal-diameter", 3.1)],
        {"prophylactic-rod-non-telescoping"},
        {"prophylactic-rod-telescoping"},
    ),
    (
        "rod-size-in-cm",
        CHILD,
        [
            c("oi-type-1"),
            *TWO_RECENT,
            o(
                "medullary-canal-diameter",
                0.25,
                valueQuantity={"value": 0.25, "code": "cm", "system": "http://unitsofmeasure.org"},
            ),
        ],
        {"prophylactic-rod-non-telescoping"},
        set(),
    ),
    (
        "rod-smallest-bone-counts",
        CHILD,
        [
            c("oi-type-1"),
            *TWO_RECENT,
            o("medullary-canal-diameter", 5.0, bodySite={"text": "femur"}),
            o("medullary-canal-diameter", 2.9, bodySite={"text": "tibia"}),
        ],
        {"prophylactic-rod-non-telescoping"},
        set(),
    ),
    (
        "rod-latest-per-bone",
        CHILD,
        [
            c("oi-type-1"),
            *TWO_RECENT,
            o("medullary-canal-diameter", 2.9, "2024-01-01", bodySite={"text": "femur"}),
            o("medullary-canal-diameter", 4.0, "2026-01-01", bodySite={"text": "femur"}),
        ],
        {"prophylactic-rod-telescoping"},
        set(),
    ),
    (
        "rod-mature-girl-14",
        TEEN_F14,
        [c("oi-type-1"), *TWO_RECENT],
        {"prophylactic-rod-non-telescoping"},
        {"prophylactic-rod-telescoping"},
    ),
    (
        "rod-age-18-none",
        patient(birth="2008-01-01"),
        [c("oi-type-1"), *TWO_RECENT],
        set(),
        {"prophylactic-rod-telescoping", "prophylactic-rod-non-telescoping"},
    ),
    (
        "recurrent-window-inclusive",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", "2025-06-01"), c("fracture-tibia", "2026-01-01")],
        {"prophylactic-rod-telescoping"},
        set(),
    ),
    (
        "recurrent-window-day-before",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", "2025-05-31"), c("fracture-tibia", "2026-01-01")],
        set(),
        {"prophylactic-rod-telescoping", "bisphosphonate-therapy"},
    ),
    (
        "recurrent-healed-still-counts",
        CHILD,
        [
            c("oi-type-1"),
            c("fracture-femur", "2025-09-01", clinical="resolved"),
            c("fracture-tibia", "2026-02-01", clinical="inactive"),
        ],
        {"prophylactic-rod-telescoping"},
        {"fracture-care"},
    ),
    (
        "recurrent-no-onset-not-counted",
        CHILD,
        [c("oi-type-1"), c("fracture-femur", clinical="resolved"), c("fracture-tibia", "2026-02-01")],
        set(),
        {"prophylactic-rod-telescoping"},
    ),
    (
        "recurrent-feb-29",
        patient(birth="2018-01-01"),
        [c("oi-type-1"), c("fracture-femur", "2027-02-28"), c("fracture-tibia", "2027-06-01")],
        {"prophylactic-rod-telescoping"},
        set(),
        date(2028, 2, 29),
    ),
    (
        "recurrent-feb-29-day-before",
        patient(birth="2018-01-01"),
        [c("oi-type-1"), c("fracture-femur", "2027-02-27"), c("fracture-tibia", "2027-06-01")],
        set(),
        {"prophylactic-rod-telescoping"},
        date(2028, 2, 29),
    ),
    # spine
    ("scoliosis", CHILD, [c("oi-type-1"), c("scoliosis")], {"spine-deformity"}, set()),
    ("kyphoscoliosis-hpo", CHILD, [c("oi-type-1"), c("kyphoscoliosis")], {"spine-deformity"}, set()),
    (
        "scoliosis-provisional-counts",
        CHILD,
        [c("oi-type-1"), c("scoliosis", verification="provisional")],
        {"spine-deformity"},
        set(),
    ),
    (
        "scoliosis-inactive",
        CHILD,
        [c("oi-type-1"), c("scoliosis", clinical="inactive")],
        set(),
        {"spine-deformity"},
    ),
    (
        "scoliosis-entered-in-error",
        CHILD,
        [c("oi-type-1"), c("scoliosis", verification="entered-in-error")],
        set(),
        {"spine-deformity"},
    ),
    ("basilar", ADULT35, [c("oi-type-4"), c("basilar-invagination")], {"basilar-invagination"}, set()),
    (
        "spinal-fracture-relapse",
        CHILD,
        [c("oi-type-1"), c("fracture-vertebra", "2020-01-01", clinical="relapse")],
        {"spinal-fracture"},
        set(),
    ),
    # missing-facts
    ("no-birth-date", NO_BIRTH, [c("oi-type-1")], {"missing-facts", "activity-guidance-mild"}, set()),
    ("partial-year-straddles-18", patient(birth="2008"), [c("oi-type-1")], {"missing-facts"}, set()),
    ("partial-year-clear", patient(birth="2015"), [c("oi-type-1")], set(), {"missing-facts"}),
    (
        "partial-year-straddles-maturity",
        patient(birth="2012", gender="female"),
        [c("oi-type-1")],
        {"missing-facts"},
        set(),
    ),
    (
        "partial-month-clear",
        patient(birth="2008-03"),
        [c("oi-type-4")],
        set(),
        {"missing-facts", "bisphosphonate-therapy"},
    ),
    (
        "partial-month-straddles",
        patient(birth="2008-06"),
        [c("oi-type-4")],
        {"missing-facts"},
        {"bisphosphonate-therapy"},
    ),
    ("partial-year-straddles-young-adult", patient(birth="1996"), [c("oi-type-1")], {"missing-facts"}, set()),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_rule(case: tuple[Any, ...], planner: Planner) -> None:
    _, pat, resources, present, absent, *rest = case
    at = rest[0] if rest else AT
    keys = set(planner.plan(pat, resources, at).keys)
    assert present <= keys, f"missing {present - keys}; got {sorted(keys)}"
    assert not absent & keys, f"unexpected {absent & keys}"


@pytest.mark.parametrize(
    ("label", "resources"),
    [
        ("no OI at all", [c("fracture-femur", "2026-05-20"), c("fracture-tibia", "2026-01-01")]),
        ("provisional OI", [c("oi-type-3", verification="provisional")]),
        ("differential OI", [c("oi-type-3", verification="differential")]),
        ("unconfirmed OI", [c("oi-type-3", verification="unconfirmed")]),
        ("refuted OI", [c("oi-type-3", verification="refuted")]),
        ("resolved OI", [c("oi-type-3", clinical="resolved")]),
        ("osteoporosis with pseudoglioma", [c("pseudoglioma")]),
        ("unknown code", [c("unknown")]),
    ],
)
def test_not_an_oi_patient(label: str, resources: list[dict[str, Any]], planner: Planner) -> None:
    result = planner.plan(CHILD, resources, AT)
    assert result.careplan is None, label
    assert result.keys == ()


def test_oi_without_verification_status_counts(planner: Planner) -> None:
    result = planner.plan(CHILD, [c("oi-type-3", verification=None, clinical=None)], AT)
    assert "rehabilitation" in result.keys


def test_mobility_support_is_false_not_undecided_for_a_mild_patient_without_ambulatory_status(
    planner: Planner,
) -> None:
    """Issue 19: an unknown functional status is not a reason to report mobility-support as
    withheld when the severity branch is false anyway (mild)."""
    result = planner.plan(patient(birth="2018-01-01"), [c("oi-type-1")], AT)
    assert "mobility-support" not in result.keys
    assert "mobility-support" not in {w.key for w in result.withheld}
    unknown = planner.plan(patient(birth="2018-01-01"), [c("oi")], AT)  # severity unknown
    assert "mobility-support" in {w.key for w in unknown.withheld}
