"""What order-select and order-sign share: checking draft orders against oi-order-checks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from services.cds_hooks.cards import order_cards
from services.cds_hooks.errors import BadRequest, Msg, PayloadTooLarge
from services.cds_hooks.hooks.common import plan_for, trace_orders
from services.cds_hooks.models import HookRequest
from services.cds_hooks.service import HookEnv
from services.plan_builder.errors import reading
from services.plan_builder.medications import index_medications
from services.plan_builder.structural import validate_resource
from services.plan_builder.types import JSON


def draft_orders(bundle: JSON, max_entries: int) -> list[JSON]:
    """Resources of context.draftOrders (no Bundle.type required)."""
    if bundle.get("resourceType") != "Bundle":
        raise BadRequest("context.draftOrders must be a FHIR Bundle", msg=Msg.INVALID_DRAFT_ORDERS)
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadRequest("context.draftOrders.entry must be an array", msg=Msg.INVALID_DRAFT_ORDERS)
    if len(entries) > max_entries:
        raise PayloadTooLarge(f"context.draftOrders has more than {max_entries} entries")
    drafts = [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    for i, draft in enumerate(drafts):
        # draft orders are read like the record: a mistyped field is the client's error
        with reading("draft order is not usable FHIR"):
            validate_resource(draft, f"context.draftOrders.entry[{i}].resource")
    return drafts


async def check_orders(
    request: HookRequest, orders: Iterable[JSON], at: date, env: HookEnv, drafts: Iterable[JSON] = ()
) -> list[JSON]:
    data, result = await plan_for(request, at, env, careplan=False)
    # a draft's Medication may be contained, in draftOrders, or in the record
    medications = index_medications([*data.resources, *drafts])
    orders = list(orders)
    findings = env.checker.check(orders, result.facts, medications)
    trace_orders(env, orders, result.facts, medications, "draft order")
    return order_cards(findings, result.keys, f"Patient/{request.context['patientId']}")
