"""NDJSON streaming: one outcome per patient, in order, with memory bounded by one patient."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from datetime import date

from services.plan_builder import Planner
from services.plan_builder.stream import PatientStream
from tests.conftest import load_vignettes, vignette_bundle

AT = date(2026, 6, 1)


def _templates() -> list[list[dict]]:  # type: ignore[type-arg]
    out = []
    for v in load_vignettes():
        if v["hook"] != "patient-view":
            continue
        out.append([e["resource"] for e in vignette_bundle(v["id"])["entry"] if "meta" not in e["resource"]])
    return out


def _lines(count: int) -> Iterator[bytes]:
    """`count` patients, each Patient followed by its own resources, made on the fly."""
    templates = _templates()
    for i in range(count):
        resources = templates[i % len(templates)]
        pid = f"p{i}"
        for resource in resources:
            copy = dict(
                resource, id=pid if resource["resourceType"] == "Patient" else f"{pid}-{resource['id'][:8]}"
            )
            if "subject" in copy:
                copy["subject"] = {"reference": f"Patient/{pid}"}
            yield json.dumps(copy).encode()


def _run(planner: Planner, count: int) -> tuple[int, int]:
    stream = PatientStream(planner, AT)
    seen = 0
    tracemalloc.start()
    for number, line in enumerate(_lines(count), 1):
        seen += sum(1 for _ in stream.feed(line, number))
    seen += sum(1 for _ in stream.close())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seen, peak


def test_five_thousand_patients_in_bounded_memory(planner: Planner) -> None:
    _run(planner, 500)  # warm every cache first (compiled conditions, memoized outcomes)
    small_count, small_peak = _run(planner, 500)
    count, peak = _run(planner, 5_000)
    assert (small_count, count) == (500, 5_000)  # one outcome per patient
    # ten times the patients, about the same peak: nothing accumulates per patient
    assert peak < small_peak * 1.5 + 256 * 1024, (small_peak, peak)


def test_outcomes_keep_input_order(planner: Planner) -> None:
    stream = PatientStream(planner, AT)
    refs = []
    for number, line in enumerate(_lines(40), 1):
        refs += [o.patient_ref for o in stream.feed(line, number)]
    refs += [o.patient_ref for o in stream.close()]
    assert refs == [f"Patient/p{i}" for i in range(40)]
