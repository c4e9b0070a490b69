"""Shadow mode (OI_CDS_MODE=shadow): every call is evaluated, what it would have shown is
recorded (key, service, day, a hashed patient id), and the cards go only to the pilot users.
The go-live report (/admin/shadow) reads the records back."""

from __future__ import annotations

from datetime import date

from services.cds_hooks.config import Settings
from services.cds_hooks.events import EventSink
from services.cds_hooks.models import HookRequest
from services.cds_hooks.service import Trace
from services.plan_builder.types import JSON

SUMMARY = "careplan-summary"


def would_show(hook: str, trace: Trace | None, cards: list[JSON]) -> list[tuple[str, str | None]]:
    """(key, indicator) of each recommendation the answer holds: a patient-view's plan keys
    (the summary card lists them) and every card of its own (warnings, order findings)."""
    shown: dict[str, str | None] = {}
    if hook == "patient-view" and trace is not None and trace.result is not None:
        for rec in trace.result.recommendations:
            shown[rec.key] = rec.indicator or "info"
    for card in cards:
        key = card["source"]["topic"]["code"]
        if key != SUMMARY:
            shown[key] = card.get("indicator")
    return list(shown.items())


def answer(
    events: EventSink,
    settings: Settings,
    service_id: str,
    request: HookRequest,
    at: date,
    trace: Trace | None,
    cards: list[JSON],
) -> list[JSON]:
    """Records what this call would have shown; returns the cards only for a pilot user."""
    if events.secret is not None:
        events.would_show(
            at, service_id, str(request.context["patientId"]), would_show(request.hook, trace, cards)
        )
    events.shown(at, service_id, (c["source"]["topic"]["code"] for c in cards), mode="shadow")
    return cards if request.context.get("userId") in settings.shadow_pilot_users else []
