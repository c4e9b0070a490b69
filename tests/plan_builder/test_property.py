"""Random deletions of optional fields never raise anything but our own input error."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.plan_builder import Planner
from services.plan_builder.batch import plan_bundle
from services.plan_builder.errors import PlanInputError
from tests.conftest import load_vignettes, vignette_bundle

BUNDLES = [vignette_bundle(v["id"]) for v in load_vignettes()]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


def _delete(doc: Any, path: tuple[Any, ...]) -> None:
    node = doc
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_deletions(data: st.DataObject, planner: Planner) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(BUNDLES)))
    entries = doc["entry"]
    for _ in range(data.draw(st.integers(1, 6))):
        candidates = _paths(entries)
        if not candidates:
            break
        path = data.draw(st.sampled_from(candidates))
        try:
            _delete(entries, path)
        except (KeyError, IndexError):
            continue
    try:
        outcomes = list(plan_bundle(doc, planner, date(2026, 6, 1)))
    except PlanInputError:
        return
    for outcome in outcomes:
        json.dumps(outcome.resource)
        assert outcome.resource["resourceType"] in {"CarePlan", "OperationOutcome"}
