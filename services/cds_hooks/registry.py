"""The CDS services this server offers. Each hook module declares its service next to its
handler; discovery is derived from this registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from services.cds_hooks.models import CdsService, HookRequest
from services.cds_hooks.prefetch import TEMPLATES
from services.plan_builder.types import JSON

if TYPE_CHECKING:
    from services.cds_hooks.fhir_client import FhirClient
    from services.plan_builder import Knowledge, Planner
    from services.plan_builder.orders import OrderChecker


@dataclass(frozen=True)
class HookEnv:
    """What a hook handler needs, built once per app."""

    knowledge: Knowledge
    planner: Planner
    checker: OrderChecker
    fhir: FhirClient


Handler = Callable[[HookRequest, Any, date, HookEnv], Awaitable[list[JSON]]]


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    usage_requirements: str
    context_model: type[BaseModel]
    handler: Handler

    def discovery(self) -> CdsService:
        return CdsService(
            hook=self.hook,
            title=self.title,
            description=self.description,
            id=self.id,
            prefetch=dict(TEMPLATES),
            usageRequirements=self.usage_requirements,
        )


USAGE = (
    "FHIR R4 data. Needs the patient, their Conditions, Observations and MedicationRequests "
    "(prefetch or an allow-listed fhirServer; otherwise 412); MedicationStatements and CarePlans "
    "are used when available."
)


def registry() -> dict[str, ServiceDefinition]:
    from services.cds_hooks.hooks import order_select, order_sign, patient_view

    services = (patient_view.SERVICE, order_select.SERVICE, order_sign.SERVICE)
    return {s.id: s for s in services}
