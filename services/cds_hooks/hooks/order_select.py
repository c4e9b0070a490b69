"""oi-order-select (order-select): checks the newly selected draft orders only."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.cds_hooks.hooks.orders import check_orders, draft_orders
from services.cds_hooks.models import HookRequest, OrderSelectContext
from services.cds_hooks.service import USAGE, HookEnv, ServiceDefinition
from services.plan_builder.types import JSON


async def handle(request: HookRequest, context: Any, at: date, env: HookEnv) -> list[JSON]:
    selected = set(context.selections)
    drafts = draft_orders(context.draftOrders, env.fhir.max_entries)
    orders = [o for o in drafts if f"{o.get('resourceType')}/{o.get('id')}" in selected]
    return await check_orders(request, orders, at, env, drafts)


SERVICE = ServiceDefinition(
    id="oi-order-select",
    hook="order-select",
    title="OI order check (order-select)",
    description=(
        "Checks newly selected medication and procedure orders for a patient with OI: "
        "bisphosphonates, therapies with no or mixed evidence, unapproved or investigational "
        "therapies, and rod type against skeletal maturity and bone size."
    ),
    usage_requirements=USAGE + " Looks only at the orders named in context.selections.",
    context_model=OrderSelectContext,
    handler=handle,
)
