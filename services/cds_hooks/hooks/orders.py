"""What order-select and order-sign share: checking draft orders against oi-order-checks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from services.cds_hooks.cards import order_cards, override_reasons
from services.cds_hooks.errors import BadRequest, PayloadTooLarge
from services.cds_hooks.hooks.common import plan_for
from services.cds_hooks.models import HookRequest
from services.cds_hooks.registry import HookEnv
from services.plan_builder.types import JSON


def draft_orders(bundle: JSON, max_entries: int) -> list[JSON]:
    """Resources of context.draftOrders (no Bundle.type required)."""
    if bundle.get("resourceType") != "Bundle":
        raise BadRequest("context.draftOrders must be a FHIR Bundle")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadRequest("context.draftOrders.entry must be an array")
    if len(entries) > max_entries:
        raise PayloadTooLarge(f"context.draftOrders has more than {max_entries} entries")
    return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


async def check_orders(request: HookRequest, orders: Iterable[JSON], at: date, env: HookEnv) -> list[JSON]:
    _, result = await plan_for(request, at, env)
    findings = env.checker.check(list(orders), result.facts)
    reasons = env.knowledge.get("CodeSystem", "oi-override-reason")
    assert reasons is not None
    cards = order_cards(
        findings,
        "bisphosphonate-therapy" in result.keys,
        f"Patient/{request.context['patientId']}",
        override_reasons(reasons),
    )
    return cards
