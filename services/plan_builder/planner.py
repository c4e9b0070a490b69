"""$apply for one patient: facts -> the management PlanDefinition -> recommendations + CarePlan."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.plan_builder.careplan import build_careplan
from services.plan_builder.engine import CompiledAction
from services.plan_builder.facts import PatientFacts, extract_facts, may_have_oi
from services.plan_builder.knowledge import Knowledge
from services.plan_builder.results import PlanResult, Recommendation, Withheld
from services.plan_builder.settings import PlanSettings
from services.plan_builder.site import unavailable
from services.plan_builder.types import JSON


def recommend(
    action: CompiledAction,
    facts: PatientFacts,
    more_reasons: tuple[str, ...] = (),
    more_evidence: tuple[str, ...] = (),
) -> Recommendation:
    """An applicable action with its reasons (fact statements) and evidence (references)."""
    names = action.names("facts")
    cited = facts.evidence
    evidence = tuple(dict.fromkeys(ref for n in names if n in cited for ref in cited[n]))
    return Recommendation(
        key=action.key,
        coding=action.coding,
        title=action.title,
        description=action.description,
        citation=action.citation,
        indicator=action.indicator,
        reasons=tuple([facts.describe(n) for n in names]) + more_reasons,
        evidence=evidence + more_evidence,
        activity_definition=action.activity_definition,
        kind=action.kind,
    )


class Planner:
    def __init__(self, knowledge: Knowledge, settings: PlanSettings | None = None) -> None:
        self.knowledge = knowledge
        self.settings = settings or PlanSettings()
        self.plan_definition = knowledge.management
        # facts this site cannot supply (no local code mapped): said once in the plan's notes
        self.site_gaps = {
            fact.fact: (fact.label, why)
            for fact in knowledge.vocabulary.observation_facts
            for label, why in unavailable(knowledge.site, knowledge.terminology, (fact,))
        }

    def facts(
        self,
        patient: JSON,
        resources: Sequence[JSON],
        at: date,
        patient_ref: str | None = None,
        validate: bool = False,
    ) -> PatientFacts:
        """validate=True validates structurally as it reads (for input not yet validated)."""
        return extract_facts(
            patient,
            resources,
            at,
            self.knowledge.terminology,
            self.settings,
            patient_ref,
            validate,
            self.knowledge.vocabulary,
        )

    def may_have_oi(self, resources: Sequence[JSON]) -> bool:
        return may_have_oi(resources, self.knowledge.terminology)

    def without_oi(self, at: date, patient_ref: str | None) -> PlanResult:
        """The answer for a patient with no OI Condition (see may_have_oi)."""
        return PlanResult(self.knowledge.vocabulary.without_oi(at, patient_ref), (), (), (), None)

    def plan(
        self,
        patient: JSON,
        resources: Sequence[JSON],
        at: date,
        patient_ref: str | None = None,
        facts: PatientFacts | None = None,
        validate: bool = False,
        careplan: bool = True,
    ) -> PlanResult:
        """careplan=False decides the recommendations without building the CarePlan (the order
        hooks need only the keys and the facts)."""
        facts = facts or self.facts(patient, resources, at, patient_ref, validate)
        if not facts.oi:
            return PlanResult(facts, (), (), (), None)
        vector = facts.vector()
        outcome = self.plan_definition.evaluate({"facts": vector})
        actions = self.plan_definition.actions
        withheld = [
            Withheld(a.key, a.title, tuple(n for n in a.names("facts") if vector.get(n) is None))
            for a, applies in zip(actions, outcome, strict=True)
            if applies is None
        ]
        # the missing-facts activity says what the gaps hold back
        held_back = ("withheld until recorded: " + ", ".join(w.key for w in withheld),) if withheld else ()
        recommendations = [
            recommend(action, facts, held_back if "missingFacts" in action.names("facts") else ())
            for action, applies in zip(actions, outcome, strict=True)
            if applies
        ]
        notes = _notes(facts, withheld) + self._site_note(facts, vector, withheld)
        if not careplan:
            return PlanResult(facts, tuple(recommendations), tuple(withheld), notes, None)
        subject = facts.patient_ref or ""
        built = build_careplan(
            subject=subject,
            at=at,
            plan_canonical=self.plan_definition.canonical,
            recommendations=recommendations,
            notes=notes,
        )
        return PlanResult(facts, tuple(recommendations), tuple(withheld), notes, built)

    def _site_note(self, facts: PatientFacts, vector: JSON, withheld: list[Withheld]) -> tuple[str, ...]:
        """One plain note when this patient lacks a fact this site cannot supply at all (no local
        code mapped), unless a missing record entry (the birth date, say) already explains it."""
        explained = {name for m in facts.missing for name in m.affects}
        gaps = {
            name: gap
            for name, gap in self.site_gaps.items()
            if name not in explained and vector.get(name) in (None, "unknown")
        }
        if not gaps:
            return ()
        which = "; ".join(f"{label} ({why})" for label, why in gaps.values())
        keys = ", ".join(w.key for w in withheld if set(w.unknown) & gaps.keys())
        then = f"Withheld for that reason: {keys}." if keys else "The plan was made without it."
        return (f"Not available at this site: {which}. {then}",)


def _notes(facts: PatientFacts, withheld: list[Withheld]) -> tuple[str, ...]:
    """A note for each missing fact (and what it withholds), then data-quality notes."""
    notes: list[str] = []
    for missing in facts.missing:
        keys = [w.key for w in withheld if set(w.unknown) & set(missing.affects)]
        if keys:
            notes.append(
                f"Missing information: {missing.text}. Withheld until it is recorded: {', '.join(keys)}."
            )
        elif missing.fires_missing_facts:
            notes.append(
                f"Missing information: {missing.text}. "
                "It withholds no recommendation today but may change the plan."
            )
    notes.extend(f"Data note: {n}." for n in facts.notes)
    return tuple(notes)
