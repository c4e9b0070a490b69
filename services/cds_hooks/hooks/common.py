"""What the three hooks share: the patient's data and facts."""

from __future__ import annotations

from datetime import date

from services.cds_hooks.models import HookRequest
from services.cds_hooks.prefetch import PatientData, gather
from services.cds_hooks.service import HookEnv
from services.plan_builder import PlanResult
from services.plan_builder.errors import reading


async def plan_for(
    request: HookRequest, at: date, env: HookEnv, careplan: bool = True
) -> tuple[PatientData, PlanResult]:
    data = await gather(request, env.fhir, env.prefetch, env.planner.may_have_oi, env.budget)
    # The CarePlan subject is always Patient/<context.patientId>.
    ref = f"Patient/{request.context['patientId']}"
    if data.without_oi:
        # almost every chart open: a patient without OI is answered without reading the rest
        return data, env.planner.without_oi(at, ref)
    with reading("patient data is not usable FHIR"):
        result = env.planner.plan(
            data.patient, data.resources, at, patient_ref=ref, validate=True, careplan=careplan
        )
    return data, result
