"""A generic PlanDefinition $apply core: compiled FHIRPath conditions over a facts vector.

Each action's applicability condition is FHIRPath (fhirpathpy) over plain variables such as
``%facts`` and ``%order``. FHIRPath's three-valued logic is the contract's: a fact that is not
known is empty, and a condition that comes out empty is undecided, so the recommendation is
withheld and reported. The outcome depends only on the few fact values the conditions name,
so it is memoized on exactly those values: most patients hit the cache, and a miss costs one
fhirpathpy call per action.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fhirpathpy

from services.plan_builder.canonical import EXT
from services.plan_builder.errors import KnowledgeError
from services.plan_builder.types import JSON, Tri

FHIRPATH = "text/fhirpath"
EXT_INDICATOR = EXT + "cds-card-indicator"
EXT_OVERRIDE_REASONS = EXT + "cds-card-override-reasons"
EXT_OFFERS_REMOVAL = EXT + "cds-card-offers-removal"
EXT_ALTERNATIVE = EXT + "cds-card-alternative"
EXT_NOTE = EXT + "cds-card-note"
EXT_PREFERRED = EXT + "cds-card-preferred-suggestion"
REMOVE_DRAFT = "remove-draft"  # EXT_PREFERRED's code for the suggestion that removes the draft
PROPOSABLE = frozenset({"MedicationRequest", "ServiceRequest"})  # what an alternative may propose
_VARIABLE = re.compile(r"%([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")
_CACHE_LIMIT = 65_536


class PlanCompileError(KnowledgeError):
    """A PlanDefinition cannot be compiled: the service must not start on it."""


@dataclass(frozen=True, slots=True)
class Alternative:
    """An order to propose instead of the drafted one, when the patient's plan holds a key."""

    definition: JSON  # an ActivityDefinition
    when_recommended: str | None
    replaces_order: bool = False  # the suggestion also removes the draft and keeps its bodySite


@dataclass(frozen=True, slots=True)
class CardOffers:
    """What an action's card offers besides its text: data on the action, read by the faces."""

    override_reasons: JSON | None = None  # a CodeSystem of reasons
    offers_removal: bool = False
    alternatives: tuple[Alternative, ...] = ()
    note: str | None = None
    preferred: str | None = None  # REMOVE_DRAFT or an alternative's ActivityDefinition id

    def recommended(self, suggestion: str) -> bool | None:
        """isRecommended for one suggestion (REMOVE_DRAFT or an ActivityDefinition id); None
        (omitted) for the others."""
        return True if self.preferred is not None and suggestion == self.preferred else None


@dataclass(frozen=True, slots=True)
class CompiledAction:
    id: str
    key: str
    coding: JSON
    title: str
    description: str
    expression: str
    references: tuple[tuple[str, str], ...]  # (variable, name) the condition reads
    citation: str
    indicator: str | None
    definition_canonical: str | None
    definition: JSON | None
    function: Callable[..., Any] = field(repr=False, compare=False)
    offers: CardOffers = field(default_factory=CardOffers)
    activity_definition: str | None = None  # the definition's versioned canonical (the CarePlan's)
    kind: str | None = None  # the definition's kind
    _names: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    def names(self, variable: str) -> tuple[str, ...]:
        """The names of one variable the condition reads (asked per action on every plan)."""
        found = self._names.get(variable)
        if found is None:
            found = self._names[variable] = tuple(n for v, n in self.references if v == variable)
        return found


@dataclass
class CompiledPlan:
    url: str
    version: str
    title: str
    actions: tuple[CompiledAction, ...]
    reads: tuple[tuple[str, str], ...]
    _cache: dict[tuple[Any, ...], tuple[Tri, ...]] = field(default_factory=dict, repr=False)

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"

    def evaluate(self, env: Mapping[str, Mapping[str, Any]]) -> tuple[Tri, ...]:
        """One result per action: True applies, False does not, None undecided."""
        key = tuple(env[var].get(name) for var, name in self.reads)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        context = {var: dict(values) for var, values in env.items()}
        result = tuple(_truth(a, a.function({}, context)) for a in self.actions)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result


def _truth(action: CompiledAction, value: list[Any]) -> Tri:
    if not value:
        return None
    if len(value) == 1 and isinstance(value[0], bool):
        return value[0]
    raise PlanCompileError(f"action {action.id}: condition did not give a boolean: {value!r}")


def compile_plan(
    plan: JSON, resources: Mapping[str, JSON], variables: Mapping[str, frozenset[str]]
) -> CompiledPlan:
    """Compile every action (nested actions flattened, in document order)."""
    actions: list[CompiledAction] = []
    for action in _flatten(plan.get("action", [])):
        actions.append(_compile_action(plan, action, resources, variables))
    reads = sorted({ref for a in actions for ref in a.references})
    return CompiledPlan(
        url=plan["url"],
        version=plan.get("version", ""),
        title=str(plan.get("title", plan["id"])),
        actions=tuple(actions),
        reads=tuple(reads),
    )


def _flatten(actions: list[JSON]) -> list[JSON]:
    out: list[JSON] = []
    for action in actions:
        out.append(action)
        out.extend(_flatten(action.get("action", [])))
    return [a for a in out if a.get("condition") or not a.get("action")]


def _compile_action(
    plan: JSON, action: JSON, resources: Mapping[str, JSON], variables: Mapping[str, frozenset[str]]
) -> CompiledAction:
    where = f"PlanDefinition {plan.get('id')} action {action.get('id')}"
    codings = [c for cc in action.get("code", []) for c in cc.get("coding", [])]
    if len(codings) != 1:
        raise PlanCompileError(f"{where}: needs exactly one action.code coding (its key)")
    conditions = [c for c in action.get("condition", []) if c.get("kind") == "applicability"]
    if not conditions:
        raise PlanCompileError(f"{where}: needs an applicability condition")
    expressions = []
    for cond in conditions:
        expr = cond.get("expression", {})
        if expr.get("language") != FHIRPATH or not expr.get("expression"):
            raise PlanCompileError(f"{where}: conditions must be {FHIRPATH} expressions")
        expressions.append(f"({expr['expression']})")
    # Several applicability conditions all have to hold.
    expression = " and ".join(expressions)
    references = []
    for var, name in _VARIABLE.findall(expression):
        if var not in variables:
            raise PlanCompileError(f"{where}: unknown variable %{var}")
        if not name or name not in variables[var]:
            raise PlanCompileError(f"{where}: %{var}.{name} is not a known fact")
        references.append((var, name))
    try:
        function = fhirpathpy.compile(expression)
        # fhirpathpy reports some syntax errors only when run: run once on all-unknown facts.
        trial = function({}, {var: {} for var in variables})
    except Exception as exc:  # fhirpathpy raises bare parser/runtime exceptions
        raise PlanCompileError(f"{where}: FHIRPath does not compile: {exc!r}") from exc
    if not isinstance(trial, list) or len(trial) > 1 or (trial and not isinstance(trial[0], bool)):
        raise PlanCompileError(f"{where}: condition must give a boolean or empty, gave {trial!r}")
    canonical = action.get("definitionCanonical")
    definition = None
    if canonical:
        definition = resources.get(canonical.split("|", 1)[0])
        if definition is None:
            raise PlanCompileError(f"{where}: definitionCanonical {canonical} does not resolve")
    documentation = action.get("documentation", [])
    citation = documentation[0].get("display", "") if documentation else ""
    indicator = next(
        (e.get("valueCode") for e in action.get("extension", []) if e.get("url") == EXT_INDICATOR),
        None,
    )
    coding = codings[0]
    offers = _card_offers(action.get("extension", []), resources, where)
    return CompiledAction(
        id=action.get("id", coding["code"]),
        key=coding["code"],
        coding={k: coding[k] for k in ("system", "code", "display") if k in coding},
        title=action.get("title", coding.get("display", "")),
        description=action.get("description", ""),
        expression=expression,
        references=tuple(dict.fromkeys(references)),
        citation=citation,
        indicator=indicator,
        definition_canonical=canonical,
        definition=definition,
        function=function,
        offers=offers,
        activity_definition=_versioned(definition or {}),
        kind=(definition or {}).get("kind"),
    )


def _versioned(resource: JSON) -> str | None:
    url = resource.get("url")
    if not url:
        return None
    return f"{url}|{resource['version']}" if resource.get("version") else str(url)


def _resolve(canonical: Any, resources: Mapping[str, JSON], where: str) -> JSON:
    found = resources.get(str(canonical).split("|", 1)[0]) if isinstance(canonical, str) else None
    if found is None:
        raise PlanCompileError(f"{where}: {canonical!r} does not resolve to a knowledge artifact")
    return found


def _card_offers(extensions: list[JSON], resources: Mapping[str, JSON], where: str) -> CardOffers:
    reasons = None
    removal = False
    note = None
    preferred = None
    alternatives: list[Alternative] = []
    for ext in extensions:
        url = ext.get("url")
        if url == EXT_OVERRIDE_REASONS:
            reasons = _resolve(ext.get("valueCanonical"), resources, where)
        elif url == EXT_OFFERS_REMOVAL:
            removal = ext.get("valueBoolean") is True
        elif url == EXT_NOTE:
            note = ext.get("valueMarkdown")
        elif url == EXT_PREFERRED:
            preferred = ext.get("valueCode")
        elif url == EXT_ALTERNATIVE:
            parts = {e.get("url"): e for e in ext.get("extension", [])}
            definition = _resolve((parts.get("definition") or {}).get("valueCanonical"), resources, where)
            if definition.get("resourceType") != "ActivityDefinition":
                raise PlanCompileError(f"{where}: an alternative must be an ActivityDefinition")
            if definition.get("kind") not in PROPOSABLE:
                raise PlanCompileError(
                    f"{where}: an alternative proposes a MedicationRequest or ServiceRequest"
                )
            alternatives.append(
                Alternative(
                    definition,
                    (parts.get("whenRecommended") or {}).get("valueCode"),
                    (parts.get("replacesOrder") or {}).get("valueBoolean") is True,
                )
            )
    offered = {a.definition.get("id") for a in alternatives} | ({REMOVE_DRAFT} if removal else set())
    if preferred is not None and preferred not in offered:
        raise PlanCompileError(f"{where}: the preferred suggestion {preferred!r} is not one the card offers")
    return CardOffers(reasons, removal, tuple(alternatives), note, preferred)
