"""What a CDS service is (its discovery metadata and handler) and what a handler is given.

Below the hook modules and the registry: each hook module declares its ServiceDefinition next to
its handler, and registry.py lists them (no import circle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from services.cds_hooks.models import CdsService, HookRequest
from services.cds_hooks.prefetch import Budget
from services.plan_builder.types import JSON

if TYPE_CHECKING:
    from services.cds_hooks.fhir_client import FhirClient
    from services.cds_hooks.prefetch import PatientData, PrefetchKey
    from services.plan_builder import Knowledge, Planner, PlanResult
    from services.plan_builder.orders import OrderChecker


@dataclass
class Trace:
    """What explain mode reports about one call, filled in by the hook as it runs (only when
    explain mode is on: the hot path never builds one)."""

    data: PatientData | None = None
    result: PlanResult | None = None
    orders: list[JSON] = field(default_factory=list)  # explain_orders entries
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds by step
    explain: bool = True  # False: shadow mode keeps only the result (what would have been shown)


@dataclass(frozen=True)
class HookEnv:
    """What a hook handler needs, built once per app."""

    knowledge: Knowledge
    planner: Planner
    checker: OrderChecker
    fhir: FhirClient
    prefetch: tuple[PrefetchKey, ...]  # derived from the knowledge and the site's maps
    review_active_orders: bool = True  # OI_CDS_REVIEW_ACTIVE_ORDERS
    quiet_when_current: bool = False  # OI_CDS_QUIET_WHEN_CURRENT
    budget: Budget = field(default_factory=Budget)  # how the fallback may use the FHIR server
    trace: Trace | None = None  # explain mode: this call's trace


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

    def discovery(self, templates: Mapping[str, str]) -> CdsService:
        return CdsService(
            hook=self.hook,
            title=self.title,
            description=self.description,
            id=self.id,
            prefetch=dict(templates),
            usageRequirements=self.usage_requirements,
        )


USAGE = (
    "FHIR R4 data. Needs the patient, their Conditions, Observations and MedicationRequests "
    "(prefetch or an allow-listed fhirServer; otherwise 412); MedicationStatements and CarePlans "
    "are used when available."
)
