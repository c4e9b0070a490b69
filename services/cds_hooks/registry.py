"""The CDS services this server offers. Each hook module declares its service next to its
handler; discovery is derived from this registry."""

from __future__ import annotations

from services.cds_hooks.hooks import order_select, order_sign, patient_view
from services.cds_hooks.service import ServiceDefinition

SERVICES = (patient_view.SERVICE, order_select.SERVICE, order_sign.SERVICE)


def registry() -> dict[str, ServiceDefinition]:
    return {s.id: s for s in SERVICES}
