"""Load the knowledge artifacts of fhir_profiles/ once and check that they hang together."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from services.plan_builder.canonical import (
    BASE,
    MANAGEMENT_PLAN,
    ORDER_PLAN,
    RECOMMENDATION_SYSTEM,
)
from services.plan_builder.engine import CompiledPlan, compile_plan
from services.plan_builder.errors import KnowledgeError
from services.plan_builder.facts import ORDER_FACT_NAMES, VOCABULARY, Vocabulary
from services.plan_builder.site import NO_SITE, Site, load_site
from services.plan_builder.terminology import Terminology
from services.plan_builder.types import JSON


def default_profiles_dir() -> Path:
    import fhir_profiles

    return Path(fhir_profiles.__file__).parent


@dataclass
class Knowledge:
    resources: dict[str, JSON] = field(default_factory=dict)  # canonical url -> resource
    terminology: Terminology = field(default_factory=Terminology)
    plans: dict[str, CompiledPlan] = field(default_factory=dict)  # canonical url -> plan
    recommendation_codes: dict[str, JSON] = field(default_factory=dict)  # key -> concept
    site: Site = NO_SITE  # the hospital's ConceptMaps (OI_CDS_SITE_DIR)
    vocabulary: Vocabulary = VOCABULARY  # the facts the PlanDefinitions may read

    def by_type(self, resource_type: str) -> list[JSON]:
        if resource_type == "ConceptMap":
            return list(self.site.maps)  # the site's maps are served with the knowledge
        return [r for r in self.resources.values() if r["resourceType"] == resource_type]

    def get(self, resource_type: str, rid: str) -> JSON | None:
        if resource_type == "ConceptMap":
            return next((m for m in self.site.maps if m.get("id") == rid), None)
        return self.resources.get(f"{BASE}/{resource_type}/{rid}")

    @property
    def management(self) -> CompiledPlan:
        return self.plans[MANAGEMENT_PLAN]

    @property
    def order_checks(self) -> CompiledPlan:
        return self.plans[ORDER_PLAN]


def load_knowledge(
    directory: Path | None = None,
    vocabulary: Vocabulary = VOCABULARY,
    site_dir: Path | None = None,
) -> Knowledge:
    """Read every ``*.json`` artifact; compile the PlanDefinitions' conditions once; apply a
    site directory's ConceptMaps to the terminology (checked: a bad map stops start-up)."""
    directory = directory or default_profiles_dir()
    knowledge = Knowledge(vocabulary=vocabulary)
    for path in sorted(directory.glob("*.json")):
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KnowledgeError(f"{path.name}: not readable JSON ({exc})") from exc
        url = resource.get("url")
        if not isinstance(url, str):
            raise KnowledgeError(f"{path.name}: a knowledge artifact needs a canonical url")
        if url in knowledge.resources:
            raise KnowledgeError(f"{path.name}: duplicate canonical {url}")
        knowledge.resources[url] = resource

    value_sets = {r["id"]: r for r in knowledge.by_type("ValueSet")}
    knowledge.terminology = Terminology.build(value_sets)
    if site_dir is not None:
        systems = frozenset(
            inc["system"]
            for vs in value_sets.values()
            for inc in vs.get("compose", {}).get("include", [])
            if inc.get("system")
        )
        knowledge.site = load_site(site_dir, knowledge.terminology, systems)
        knowledge.terminology.translations = dict(knowledge.site.translations)
    codes = knowledge.resources.get(RECOMMENDATION_SYSTEM)
    if codes is None:
        raise KnowledgeError("the recommendation CodeSystem is missing")
    knowledge.recommendation_codes = {c["code"]: c for c in codes.get("concept", [])}

    variables = {"facts": vocabulary.names, "order": ORDER_FACT_NAMES}
    for plan in knowledge.by_type("PlanDefinition"):
        compiled = compile_plan(plan, knowledge.resources, variables)
        for action in compiled.actions:
            if action.key not in knowledge.recommendation_codes:
                raise KnowledgeError(
                    f"PlanDefinition {plan['id']} action {action.id}: key {action.key!r} "
                    "is not in the recommendation CodeSystem"
                )
        knowledge.plans[plan["url"]] = compiled
    for required in (MANAGEMENT_PLAN, ORDER_PLAN):
        if required not in knowledge.plans:
            raise KnowledgeError(f"PlanDefinition {required} is missing")
    return knowledge
