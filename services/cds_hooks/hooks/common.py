"""What the three hooks share: the patient's data and facts."""

from __future__ import annotations

import time
from datetime import date

from services.cds_hooks.models import HookRequest
from services.cds_hooks.prefetch import PatientData, gather
from services.cds_hooks.service import HookEnv
from services.plan_builder import PlanResult
from services.plan_builder.errors import reading
from services.plan_builder.explain import explain_orders
from services.plan_builder.facts import PatientFacts
from services.plan_builder.medications import Medications
from services.plan_builder.types import JSON


async def plan_for(
    request: HookRequest, at: date, env: HookEnv, careplan: bool = True
) -> tuple[PatientData, PlanResult]:
    started = time.perf_counter()
    data = await gather(request, env.fhir, env.prefetch, env.planner.may_have_oi, env.budget)
    gathered = time.perf_counter()
    # The CarePlan subject is always Patient/<context.patientId>.
    ref = f"Patient/{request.context['patientId']}"
    if data.without_oi:
        # almost every chart open: a patient without OI is answered without reading the rest
        result = env.planner.without_oi(at, ref)
    else:
        with reading("patient data is not usable FHIR"):
            result = env.planner.plan(
                data.patient, data.resources, at, patient_ref=ref, validate=True, careplan=careplan
            )
    if env.trace is not None:
        env.trace.data, env.trace.result = data, result
        env.trace.timings["data"] = (gathered - started) * 1000
        env.trace.timings["rules"] = (time.perf_counter() - gathered) * 1000
    return data, result


def trace_orders(
    env: HookEnv,
    orders: list[JSON],
    facts: PatientFacts,
    medications: Medications,
    label: str,
    indicators: frozenset[str] | None = None,
) -> None:
    """Explain mode: every order-time check's outcome on these orders."""
    if env.trace is not None and env.trace.explain:
        env.trace.orders += explain_orders(env.checker, orders, facts, medications, label, indicators)
