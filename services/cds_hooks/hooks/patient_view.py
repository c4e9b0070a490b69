"""oi-management (patient-view): the OI care plan summary card and the cards of own-card keys."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.cds_hooks.cards import patient_view_cards
from services.cds_hooks.hooks.common import plan_for
from services.cds_hooks.models import HookRequest, PatientViewContext
from services.cds_hooks.service import USAGE, HookEnv, ServiceDefinition
from services.plan_builder.types import JSON


async def handle(request: HookRequest, context: Any, at: date, env: HookEnv) -> list[JSON]:
    data, result = await plan_for(request, at, env)
    cards = patient_view_cards(result, data.care_plans, data.unchecked, env.planner.plan_definition.version)
    return cards


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
