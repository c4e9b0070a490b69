"""Pure OI decision logic: FHIR R4 resources in, facts, recommendations and a CarePlan out.

Nothing here performs HTTP, touches a database or reads the clock: the evaluation date is
always a parameter. The clinical knowledge is loaded from ``fhir_profiles/`` as data.
"""

from services.plan_builder.errors import PlanInputError
from services.plan_builder.knowledge import Knowledge, load_knowledge
from services.plan_builder.planner import Planner
from services.plan_builder.results import PlanResult
from services.plan_builder.settings import PlanSettings

__all__ = ["Knowledge", "PlanInputError", "PlanResult", "PlanSettings", "Planner", "load_knowledge"]
