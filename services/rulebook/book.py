"""The rule book's content, worked out from the knowledge artifacts (never written by hand).

Every recommendation and order check, in plain words: what it recommends, when it applies (the
condition's description and the FHIRPath itself, the facts it reads with the site thresholds in
force), what it withholds when a fact is unknown, the source sentences it rests on (verbatim in
the artifact, checked against the project's source text), its codes, its source attributes and
the example patients that exercise it with their results now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.plan_builder.canonical import EXT
from services.plan_builder.engine import CompiledAction, CompiledPlan
from services.plan_builder.facts.base import FactSpec
from services.plan_builder.knowledge import Knowledge
from services.plan_builder.orders import ROD_TYPES
from services.plan_builder.settings import PlanSettings
from services.plan_builder.types import JSON
from services.rulebook.attributes import SourceAttributes, source_attributes
from services.rulebook.errors import RuleBookError
from services.rulebook.examples import ExampleResult

SOURCE_QUOTE = EXT + "source-quote"
_LITERAL = re.compile(r"'([a-z0-9-]+)'")


@dataclass(frozen=True)
class FactUse:
    name: str
    meaning: str
    value_sets: tuple[str, ...]
    thresholds: tuple[tuple[str, str, Any], ...]  # (setting, what it is, value in force)


@dataclass(frozen=True)
class Rule:
    anchor: str  # the card's topic code: /knowledge#<anchor> (two actions of one key share it)
    key: str
    action_id: str
    plan: str  # the PlanDefinition's title
    title: str
    recommends: str
    when: str
    expression: str
    indicator: str
    facts: tuple[FactUse, ...]
    order_facts: tuple[str, ...]
    withheld_when_unknown: tuple[str, ...]
    citation: str
    quotes: tuple[str, ...]
    value_sets: tuple[str, ...]
    offers: tuple[str, ...]
    examples: tuple[ExampleResult, ...]


@dataclass(frozen=True)
class Book:
    title: str
    versions: Mapping[str, str]  # PlanDefinition title -> version
    attributes: tuple[SourceAttributes, ...]  # one per PlanDefinition: its interventions share them
    rules: tuple[Rule, ...]
    value_sets: Mapping[str, JSON]
    examples: tuple[ExampleResult, ...] | None  # None: the vignettes are not in this installation
    changes: str  # the changelog's sections for the versions in force (Markdown)
    artifact_diff: tuple[str, ...] = ()  # against a previous knowledge directory, when given
    settings: PlanSettings = field(default_factory=PlanSettings)

    def rule(self, anchor: str) -> Rule:
        return next(r for r in self.rules if r.anchor == anchor)


def _quotes(action: JSON, where: str, source_text: str | None) -> tuple[str, ...]:
    docs = action.get("documentation") or []
    quotes = tuple(
        str(e.get("valueString"))
        for d in docs
        for e in d.get("extension", [])
        if e.get("url") == SOURCE_QUOTE and e.get("valueString")
    )
    if not quotes:
        raise RuleBookError(f"{where}: no source-quote on its documentation (the sentence it rests on)")
    if source_text is not None:
        text = _norm(source_text)
        for quote in quotes:
            if _norm(quote) not in text:
                raise RuleBookError(f"{where}: its source-quote is not in the source text: {quote!r}")
    return quotes


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _fact_uses(
    action: CompiledAction, specs: Mapping[str, FactSpec], settings: PlanSettings
) -> tuple[FactUse, ...]:
    fields = type(settings).model_fields
    uses = []
    for name in action.names("facts"):
        spec = specs[name]
        thresholds = tuple((s, str(fields[s].description), getattr(settings, s)) for s in spec.settings)
        uses.append(FactUse(name, spec.description, spec.reads, thresholds))
    return tuple(uses)


def _offers(action: CompiledAction) -> tuple[str, ...]:
    offers = action.offers
    out = []
    if offers.override_reasons:
        out.append("override reasons: " + ", ".join(c["display"] for c in offers.override_reasons["concept"]))
    if offers.offers_removal:
        out.append(
            "a suggestion that removes the draft"
            + (" (recommended)" if offers.preferred == "remove-draft" else "")
        )
    for alt in offers.alternatives:
        when = f", when the plan holds {alt.when_recommended}" if alt.when_recommended else ""
        how = " in place of the draft" if alt.replaces_order else ""
        pref = " (recommended)" if offers.preferred == alt.definition.get("id") else ""
        out.append(f"propose: {alt.definition.get('title')}{how}{when}{pref}")
    if (
        action.definition
        and action.definition.get("resourceType") == "ActivityDefinition"
        and not offers.alternatives
    ):
        out.append(f"a CarePlan activity ({action.definition.get('kind')}: {action.definition.get('title')})")
    return tuple(out)


def _rules(
    plan: CompiledPlan,
    raw: JSON,
    knowledge: Knowledge,
    settings: PlanSettings,
    source_text: str | None,
    examples: Sequence[ExampleResult] | None,
) -> list[Rule]:
    raw_actions = {a["id"]: a for a in _flat(raw.get("action", []))}
    specs = knowledge.vocabulary.specs
    seen: dict[str, int] = {}
    out = []
    for action in plan.actions:
        where = f"PlanDefinition {raw['id']} action {action.id}"
        source = raw_actions[action.id]
        condition = next(c for c in source["condition"] if c.get("kind") == "applicability")
        when = (condition.get("expression") or {}).get("description")
        if not when:
            raise RuleBookError(f"{where}: its condition has no description (when it applies, in words)")
        if not action.description:
            raise RuleBookError(f"{where}: no description (what it recommends)")
        if not action.citation:
            raise RuleBookError(f"{where}: no documentation citation")
        facts = _fact_uses(action, specs, settings)
        # %order literals name drug-group ValueSets by id, and rod types by the rod ValueSets' value
        rods = {kind: vid for vid, kind in ROD_TYPES.items()}
        found = [rods.get(v, v) for v in _LITERAL.findall(action.expression)]
        literals = [v for v in found if v in knowledge.terminology.titles]
        value_sets = tuple(dict.fromkeys([*(v for f in facts for v in f.value_sets), *literals]))
        seen[action.key] = seen.get(action.key, 0) + 1
        anchor = action.key if seen[action.key] == 1 else f"{action.key}-{seen[action.key]}"
        out.append(
            Rule(
                anchor=anchor,
                key=action.key,
                action_id=action.id,
                plan=plan.title,
                title=action.title,
                recommends=action.description,
                when=when,
                expression=action.expression,
                indicator=action.indicator or "info (in the summary card)",
                facts=facts,
                order_facts=action.names("order"),
                withheld_when_unknown=tuple(f.name for f in facts if specs[f.name].type != "boolean"),
                citation=action.citation,
                quotes=_quotes(source, where, source_text),
                value_sets=value_sets,
                offers=_offers(action),
                examples=tuple(
                    e for e in examples or () if action.key in e.expected or action.key in e.absent
                ),
            )
        )
    return out


def _flat(actions: list[JSON]) -> list[JSON]:
    out: list[JSON] = []
    for action in actions:
        out.append(action)
        out.extend(_flat(action.get("action", [])))
    return out


def changelog_sections(changelog: str | None, versions: Sequence[str]) -> str:
    """The changelog's sections for the versions in force (a committee re-approves what changed)."""
    if changelog is None:
        return ""
    sections = re.split(r"(?m)^## ", changelog)[1:]
    wanted = [s for s in sections if any(s.startswith(v + " ") for v in versions)]
    return "\n".join("## " + s.strip() + "\n" for s in wanted)


def build_book(
    knowledge: Knowledge,
    settings: PlanSettings,
    *,
    source_text: str | None,
    examples: Sequence[ExampleResult] | None,
    changelog: str | None,
    artifact_diff: Sequence[str] = (),
) -> Book:
    """The book for the knowledge in force. Raises RuleBookError, naming the artifact and the
    missing attribute, when an intervention lacks what a committee needs to read."""
    plans = [knowledge.management, knowledge.order_checks]
    raws = [knowledge.resources[p.url] for p in plans]
    attributes = tuple(source_attributes(raw) for raw in raws)
    rules = [
        rule
        for plan, raw in zip(plans, raws, strict=True)
        for rule in _rules(plan, raw, knowledge, settings, source_text, examples)
    ]
    used = {v for r in rules for v in r.value_sets}
    value_sets = {vid: vs for vid, vs in knowledge_value_sets(knowledge).items() if vid in used}
    return Book(
        title="OI-CDS rule book",
        versions={p.title: p.version for p in plans},
        attributes=attributes,
        rules=tuple(rules),
        value_sets=value_sets,
        examples=tuple(examples) if examples is not None else None,
        changes=changelog_sections(changelog, [p.version for p in plans]),
        artifact_diff=tuple(artifact_diff),
        settings=settings,
    )


def knowledge_value_sets(knowledge: Knowledge) -> dict[str, JSON]:
    return {vs["id"]: vs for vs in knowledge.by_type("ValueSet")}
