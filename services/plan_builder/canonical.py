"""The project's canonical base, and the canonical URLs the code names (all under it, once)."""

BASE = "https://oi-cds.example.org"
EXT = BASE + "/StructureDefinition/"
RECOMMENDATION_SYSTEM = BASE + "/CodeSystem/oi-recommendation"
MESSAGE_SYSTEM = BASE + "/CodeSystem/oi-cds-message"
MANAGEMENT_PLAN = BASE + "/PlanDefinition/oi-management"
ORDER_PLAN = BASE + "/PlanDefinition/oi-order-checks"
CAREPLAN_PROFILE = BASE + "/StructureDefinition/oi-careplan"
