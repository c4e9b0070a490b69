"""Why a card did or did not fire: every fact with its support, every rule's outcome and why.

For integrators (explain mode): the same evaluation the plan made, stated rule by rule. The
rules are evaluated again on the same facts vector; the PlanDefinition memoizes on it, so this
costs a dictionary lookup, and it cannot disagree with the plan it explains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.plan_builder.engine import CompiledAction, CompiledPlan
from services.plan_builder.facts import PatientFacts, resource_ref
from services.plan_builder.medications import NO_MEDICATIONS, Medications
from services.plan_builder.orders import OrderChecker
from services.plan_builder.results import PlanResult
from services.plan_builder.types import JSON, Tri

OUTCOMES: Mapping[Tri, str] = {True: "true", False: "false", None: "undecided"}


def explain_facts(facts: PatientFacts) -> list[JSON]:
    """Every fact of the vocabulary: its value, how it reads, and the resources it came from."""
    out = []
    for name, value in facts.values.items():
        entry: JSON = {
            "name": name,
            "value": value,
            "statement": facts.describe(name) if facts.oi else None,
            "from": list(facts.evidence.get(name, ())),
            "unknown": True if value is None else None,
        }
        out.append(compact(entry))
    return out


def explain_rules(plan: CompiledPlan, env: Mapping[str, Mapping[str, Any]], oi: bool) -> list[JSON]:
    """Each action of the plan: true, false or undecided, with the values its condition read."""
    if not oi:
        return [
            _rule(action, "not evaluated", env, "the record has no OI Condition") for action in plan.actions
        ]
    outcome = plan.evaluate(env)
    return [
        _rule(action, OUTCOMES[applies], env, _why(action, applies, env))
        for action, applies in zip(plan.actions, outcome, strict=True)
    ]


def _why(action: CompiledAction, applies: Tri, env: Mapping[str, Mapping[str, Any]]) -> str:
    if applies is None:
        unknown = [f"%{var}.{name}" for var, name in action.references if env[var].get(name) is None]
        return "not known: " + ", ".join(unknown)
    values = ", ".join(
        f"{name} = {_shown(env[var].get(name))}"
        for var, name in action.references
        if env[var].get(name) is not None
    )
    return f"{'true' if applies else 'false'} for {values}" if values else f"{applies}".lower()


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _rule(action: CompiledAction, outcome: str, env: Mapping[str, Mapping[str, Any]], why: str) -> JSON:
    read = {f"%{var}.{name}": env.get(var, {}).get(name) for var, name in action.references}
    return compact(
        {
            "key": action.key,
            "action": action.id,  # two actions may share a key (the rod mismatch's two ways)
            "title": action.title,
            "outcome": outcome,
            "condition": action.expression,
            "reads": {ref: value for ref, value in read.items() if value is not None},
            "unknown": [ref for ref, value in read.items() if value is None],
            "why": why,
        }
    )


def explain_plan(plan: CompiledPlan, result: PlanResult) -> JSON:
    """The management plan's facts and rules for one patient."""
    facts = result.facts
    return compact(
        {
            "evaluatedOn": facts.evaluated_on.isoformat(),
            "plan": plan.canonical,
            "facts": explain_facts(facts),
            "rules": explain_rules(plan, {"facts": facts.vector()}, facts.oi),
            "recommended": list(result.keys),
            "withheld": [{"key": w.key, "unknown": list(w.unknown)} for w in result.withheld],
            "notes": list(result.notes),
        }
    )


def explain_orders(
    checker: OrderChecker,
    orders: Sequence[JSON],
    facts: PatientFacts,
    medications: Medications = NO_MEDICATIONS,
    label: str = "order",
    indicators: frozenset[str] | None = None,
) -> list[JSON]:
    """Each order: its %order facts and every order check's outcome. The first true one is what
    it matched (as OrderChecker.check decides), and its card when its indicator is among
    `indicators` (None: any; patient-view shows only the warnings on active orders)."""
    out: list[JSON] = []
    for i, order in enumerate(orders):
        name = resource_ref(order) or f"{label} {i + 1} ({order.get('resourceType')})"
        if order.get("resourceType") not in ("MedicationRequest", "ServiceRequest"):
            out.append({"order": name, "checked": False, "why": "not a MedicationRequest or ServiceRequest"})
            continue
        ofacts = checker.order_facts(order, facts, medications) if facts.oi else {}
        env = {"facts": facts.vector(), "order": ofacts}
        rules = explain_rules(checker.plan, env, facts.oi)
        matched = next(
            (a for a, r in zip(checker.plan.actions, rules, strict=True) if r["outcome"] == "true"), None
        )
        shown = matched is not None and (indicators is None or matched.indicator in indicators)
        entry = {"order": name, "checked": facts.oi, "orderFacts": compact(ofacts), "rules": rules}
        out.append(
            compact(entry | {"matched": matched and matched.key, "card": shown and matched and matched.key})
        )
    return out


def compact(entry: JSON) -> JSON:
    """Without empty members: CDS Hooks allows no null, empty string, array or object anywhere
    in a response (an unknown fact says "unknown": true instead of a null value)."""
    return {k: v for k, v in entry.items() if v not in (None, "", [], {})}
