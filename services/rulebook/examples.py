"""The example patients (the shared vignettes) run through the knowledge when the book is built:
each one's keys now, against the keys it must and must not get. Computed, never copied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from services.plan_builder.bundle import split_bundle
from services.plan_builder.medications import index_medications
from services.plan_builder.orders import OrderChecker
from services.plan_builder.planner import Planner
from services.plan_builder.types import JSON

DRAFT_TAG = "draft-order"  # how a vignette Bundle marks the orders being drafted


@dataclass(frozen=True)
class ExampleResult:
    id: str
    note: str
    hook: str
    expected: frozenset[str]
    absent: frozenset[str]
    got: frozenset[str]

    @property
    def passed(self) -> bool:
        return self.expected <= self.got and not self.absent & self.got


def _is_draft(resource: JSON) -> bool:
    return any(t.get("code") == DRAFT_TAG for t in resource.get("meta", {}).get("tag", []))


def run_example(vignette: JSON, bundle: JSON, planner: Planner, checker: OrderChecker) -> ExampleResult:
    drafts = [e["resource"] for e in bundle["entry"] if _is_draft(e["resource"])]
    record = {**bundle, "entry": [e for e in bundle["entry"] if not _is_draft(e["resource"])]}
    group = split_bundle(record).groups[0]
    at = date.fromisoformat(vignette["evaluation_date"])
    result = planner.plan(group.patient, group.resources, at, patient_ref=group.ref, validate=True)
    if vignette["hook"] == "patient-view":
        got = set(result.keys)
    else:
        selections = vignette.get("selections")
        orders = [drafts[i] for i in selections] if selections is not None else drafts
        medications = index_medications(e["resource"] for e in bundle["entry"])
        got = {f.key for f in checker.check(orders, result.facts, medications)}
    return ExampleResult(
        vignette["id"],
        vignette.get("note", ""),
        vignette["hook"],
        frozenset(vignette["expected_keys"]),
        frozenset(vignette["expected_absent"]),
        frozenset(got),
    )


def run_examples(directory: Path, planner: Planner, checker: OrderChecker) -> list[ExampleResult] | None:
    """Every vignette of `directory` (vignettes.json and bundles/<id>.bundle.json); None when
    the directory is not there (an installation without the test data)."""
    index = directory / "vignettes.json"
    if not index.is_file():
        return None
    out = []
    for vignette in json.loads(index.read_text(encoding="utf-8")):
        bundle = json.loads(
            (directory / "bundles" / f"{vignette['id']}.bundle.json").read_text(encoding="utf-8")
        )
        out.append(run_example(vignette, bundle, planner, checker))
    return out
