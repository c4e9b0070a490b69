"""The PlanDefinitions' conditions under a second FHIRPath engine: fhirpath.js (HL7 / NLM's
reference JavaScript implementation, npm ``fhirpath``) must give what our compiled fhirpathpy
conditions give, empty (unknown) included, on the vignettes' facts and on random mixes of every
value each fact and order fact takes."""

from __future__ import annotations

import random
import re
from datetime import date
from typing import Any

from services.plan_builder import Knowledge, Planner
from services.plan_builder.bundle import split_bundle
from services.plan_builder.engine import CompiledPlan
from services.plan_builder.orders import OrderChecker
from tests.conftest import load_vignettes, vignette_bundle
from tests.node_tools import Hl7Tools

LITERAL = re.compile(r"'([^']*)'")
RANDOM_VECTORS = 400


def _seen(planner: Planner, checker: OrderChecker) -> list[dict[str, dict[str, Any]]]:
    """The environments of every shared vignette: its facts, and each draft order's facts."""
    envs = []
    for vignette in load_vignettes():
        bundle = vignette_bundle(vignette["id"])
        drafts = [
            e["resource"]
            for e in bundle["entry"]
            if any(t.get("code") == "draft-order" for t in e["resource"].get("meta", {}).get("tag", []))
        ]
        bundle["entry"] = [e for e in bundle["entry"] if e["resource"] not in drafts]
        group = split_bundle(bundle).groups[0]
        facts = planner.facts(group.patient, group.resources, date.fromisoformat(vignette["evaluation_date"]))
        envs.append({"facts": facts.vector()})
        envs += [{"facts": facts.vector(), "order": checker.order_facts(d, facts)} for d in drafts]
    return envs


def _mixes(plans: list[CompiledPlan], seen: list[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Random environments: each name takes, within its type (as the vignettes show it), a
    value seen for it, a literal the conditions compare it with, an edge, or nothing (empty)."""
    literals = {m for plan in plans for a in plan.actions for m in LITERAL.findall(a.expression)}
    domains: dict[tuple[str, str], list[Any]] = {}
    for plan in plans:
        for var, name in plan.reads:
            values = {env[var].get(name) for env in seen if var in env} - {None}
            if all(isinstance(v, bool) for v in values):
                values |= {True, False}
            elif all(isinstance(v, int) for v in values):
                values |= {0, 17, 18, 29, 30}
            else:
                values |= literals
            domains[(var, name)] = [None, *sorted(values, key=repr)]
    rng = random.Random(20261204)
    envs = []
    for _ in range(RANDOM_VECTORS):
        env: dict[str, dict[str, Any]] = {"facts": {}, "order": {}}
        for (var, name), choices in domains.items():
            env[var][name] = rng.choice(choices)
        envs.append(env)
    return envs


def test_fhirpath_js_gives_what_our_engine_gives(
    knowledge: Knowledge, planner: Planner, checker: OrderChecker, hl7: Hl7Tools
) -> None:
    plans = [knowledge.management, knowledge.order_checks]
    seen = _seen(planner, checker)
    envs = seen + _mixes(plans, seen)
    cases, ours = [], []
    for env in envs:
        for plan in plans:
            if plan is knowledge.order_checks and "order" not in env:
                continue
            for action in plan.actions:
                cases.append((action.expression, env))
                ours.append(action.function({}, {var: dict(values) for var, values in env.items()}))
    theirs = hl7.fhirpath(cases)
    differ = [(expr, env, o, t) for (expr, env), o, t in zip(cases, ours, theirs, strict=True) if o != t]
    assert not differ, differ[:3]
    # the comparison covers every outcome a condition can have
    assert {repr(o) for o in ours} == {"[True]", "[False]", "[]"}
