"""Draft orders (order-select / order-sign) -> order-time findings, via oi-order-checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.plan_builder.engine import CompiledAction
from services.plan_builder.facts import PatientFacts, resource_ref, site_key
from services.plan_builder.knowledge import Knowledge
from services.plan_builder.medications import NO_MEDICATIONS, Medications, medication_concepts
from services.plan_builder.planner import recommend
from services.plan_builder.results import Recommendation
from services.plan_builder.settings import PlanSettings
from services.plan_builder.terminology import concept_texts, normalize_text
from services.plan_builder.types import JSON

ORDER_TYPES = frozenset({"MedicationRequest", "ServiceRequest"})
DRUG_GROUP_PREFIX = "drug-"  # drug-group ValueSets are named drug-<group> (docs/clinical-rules.md)
ROD_TYPES = {"rod-telescoping": "telescoping", "rod-non-telescoping": "non-telescoping"}


@dataclass(frozen=True, slots=True)
class OrderFinding:
    """One order-time card's content: the recommendation, for which draft order, and why."""

    recommendation: Recommendation
    action: CompiledAction
    order: JSON
    order_facts: JSON

    @property
    def action_id(self) -> str:
        return self.action.id

    @property
    def key(self) -> str:
        return self.recommendation.key

    @property
    def indicator(self) -> str | None:
        return self.recommendation.indicator


class OrderChecker:
    def __init__(self, knowledge: Knowledge, settings: PlanSettings | None = None) -> None:
        self.knowledge = knowledge
        self.settings = settings or PlanSettings()
        self.plan = knowledge.order_checks

    def order_facts(
        self, order: JSON, facts: PatientFacts, medications: Medications = NO_MEDICATIONS
    ) -> JSON:
        """The %order vector: drug group (by precedence), rod type, bone size at the site."""
        term = self.knowledge.terminology
        if order.get("resourceType") == "MedicationRequest":
            concepts = medication_concepts(order, medications)
        else:
            concepts = [order["code"]] if isinstance(order.get("code"), dict) else []
        texts = [t for c in concepts for t in concept_texts(c)]
        routes = [t for d in order.get("dosageInstruction") or () for t in concept_texts(d.get("route"))]
        norm_texts = [normalize_text(t) for t in texts]
        norm_routes = [normalize_text(r) for r in routes]
        coded = frozenset().union(*(term.coded(c) for c in concepts))
        matched = {v for v in coded if not term.excluded(v, norm_texts, norm_routes)}
        matched |= term.named(texts, routes)
        group = term.first_by_priority(v for v in matched if v.startswith(DRUG_GROUP_PREFIX))
        rods = {ROD_TYPES[v] for v in matched if v in ROD_TYPES}
        return {
            "drugGroup": group,
            "rodType": rods.pop() if len(rods) == 1 else None,
            "boneSize": self._bone_size_at(order, facts),
        }

    def _bone_size_at(self, order: JSON, facts: PatientFacts) -> str:
        """The measurement at the order's bodySite, else the smallest; unknown if none."""
        if not facts.canal_by_site:
            return "unknown"
        sites = dict(facts.canal_by_site)
        value = next(
            (
                sites[k]
                for k in (site_key({"bodySite": s}) for s in order.get("bodySite") or ())
                if k in sites
            ),
            min(sites.values()),
        )
        return "small" if value < self.settings.smallest_telescoping_rod_mm else "fits"

    def check(
        self, orders: Iterable[JSON], facts: PatientFacts, medications: Medications = NO_MEDICATIONS
    ) -> list[OrderFinding]:
        """One finding per matching draft order and action; none for a patient without OI."""
        findings: list[OrderFinding] = []
        if not facts.oi:
            return findings
        vector = facts.vector()
        for order in orders:
            if order.get("resourceType") not in ORDER_TYPES:
                continue
            ofacts = self.order_facts(order, facts, medications)
            outcome = self.plan.evaluate({"facts": vector, "order": ofacts})
            for action, applies in zip(self.plan.actions, outcome, strict=True):
                if not applies:
                    continue
                order_ref = resource_ref(order)
                recommendation = recommend(action, facts, more_evidence=(order_ref,) if order_ref else ())
                findings.append(OrderFinding(recommendation, action, order, ofacts))
                break  # one card per draft order
        return findings
