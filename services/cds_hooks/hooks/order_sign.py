"""oi-order-sign (order-sign): checks every draft order about to be signed."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.cds_hooks.hooks.orders import check_orders, draft_orders
from services.cds_hooks.models import HookRequest, OrderSignContext
from services.cds_hooks.service import USAGE, HookEnv, ServiceDefinition
from services.plan_builder.types import JSON


async def handle(request: HookRequest, context: Any, at: date, env: HookEnv) -> list[JSON]:
    drafts = draft_orders(context.draftOrders, env.fhir.max_entries)
    return await check_orders(request, drafts, at, env, drafts)


SERVICE = ServiceDefinition(
    id="oi-order-sign",
    hook="order-sign",
    title="OI order check (order-sign)",
    description=(
        "Checks every draft medication and procedure order about to be signed for a patient with OI, "
        "with the same checks as order-select."
    ),
    usage_requirements=USAGE + " Looks at every order in context.draftOrders.",
    context_model=OrderSignContext,
    handler=handle,
)
