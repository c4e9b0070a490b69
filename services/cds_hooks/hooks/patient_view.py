"""oi-management (patient-view): the OI care plan summary card and the cards of own-card keys."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.cds_hooks.cards import active_order_cards, patient_view_cards
from services.cds_hooks.hooks.common import plan_for
from services.cds_hooks.models import HookRequest, PatientViewContext
from services.cds_hooks.prefetch import PatientData
from services.cds_hooks.service import USAGE, HookEnv, ServiceDefinition
from services.plan_builder import PlanInputError, PlanResult
from services.plan_builder.medications import index_medications
from services.plan_builder.orders import OrderFinding
from services.plan_builder.structural import validate_resource
from services.plan_builder.types import JSON


async def handle(request: HookRequest, context: Any, at: date, env: HookEnv) -> list[JSON]:
    data, result = await plan_for(request, at, env)
    unchecked = list(data.unchecked)
    findings = review_active_orders(data, result, env, unchecked) if env.review_active_orders else []
    cards = patient_view_cards(result, data.care_plans, unchecked, env.planner.plan_definition.version)
    return cards + active_order_cards(findings, f"Patient/{request.context['patientId']}")


def review_active_orders(
    data: PatientData, result: PlanResult, env: HookEnv, unchecked: list[str]
) -> list[OrderFinding]:
    """The order checks on the patient's active orders, for EHRs that fire only patient-view:
    warning-level findings only (the info-level ones belong to the moment of ordering)."""
    if not result.facts.oi or not data.orders:
        return []
    orders = []
    for order in data.orders:
        try:
            orders.append(validate_resource(order))
        except PlanInputError:
            # one unreadable order must not withhold the plan: said on the card instead
            unchecked.append(f"an active {order.get('resourceType')} is not usable FHIR; not checked")
    findings = env.checker.check(orders, result.facts, index_medications(data.resources))
    return [f for f in findings if f.indicator == "warning"]


SERVICE = ServiceDefinition(
    id="oi-management",
    hook="patient-view",
    title="Osteogenesis imperfecta management",
    description=(
        "OI management recommendations by age, severity and functional status, with their reasons "
        "and sources, and a draft FHIR CarePlan to create or update."
    ),
    usage_requirements=USAGE,
    context_model=PatientViewContext,
    handler=handle,
)
