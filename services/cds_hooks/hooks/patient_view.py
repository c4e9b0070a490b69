"""oi-management (patient-view): the OI care plan summary card and the cards of own-card keys."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.cds_hooks.cards import active_order_cards, patient_view_cards
from services.cds_hooks.hooks.common import plan_for, trace_orders
from services.cds_hooks.models import HookRequest, PatientViewContext
from services.cds_hooks.prefetch import PatientData
from services.cds_hooks.service import USAGE, HookEnv, ServiceDefinition
from services.plan_builder import PlanInputError, PlanResult
from services.plan_builder.careplan import plan_on_file
from services.plan_builder.medications import index_medications
from services.plan_builder.orders import OrderFinding
from services.plan_builder.structural import validate_resource
from services.plan_builder.types import JSON

REVIEWED = frozenset({"warning"})  # active orders: only warnings (info belongs to ordering time)
QUIET_EXTENSION = "org.example.oi-cds.quiet"  # true / false: overrides OI_CDS_QUIET_WHEN_CURRENT


async def handle(request: HookRequest, context: Any, at: date, env: HookEnv) -> list[JSON]:
    data, result = await plan_for(request, at, env)
    unchecked = list(data.unchecked)
    findings = review_active_orders(data, result, env, unchecked) if env.review_active_orders else []
    orders = active_order_cards(findings, f"Patient/{request.context['patientId']}")
    version = env.planner.plan_definition.version
    if quiet(request, env) and not result.urgent and plan_on_file(result, data.care_plans, version).current:
        # nothing changed and nothing urgent: no card at this chart open (warnings on active
        # orders are still said)
        return orders
    return patient_view_cards(result, data.care_plans, unchecked, version) + orders


def quiet(request: HookRequest, env: HookEnv) -> bool:
    """Whether this call asks for quiet: the request's extension, else the site's setting."""
    asked = (request.extension or {}).get(QUIET_EXTENSION)
    return asked if isinstance(asked, bool) else env.quiet_when_current


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
    medications = index_medications(data.resources)
    findings = env.checker.check(orders, result.facts, medications)
    trace_orders(env, orders, result.facts, medications, "active order", REVIEWED)
    return [f for f in findings if f.indicator in REVIEWED]


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
