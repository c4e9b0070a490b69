"""A hospital's own codes, mapped to the project's concepts by FHIR ConceptMaps in a site directory.

A site adopts the service with data, not code: each ConceptMap ``group`` maps codes of one local
system (``source``) to codes of a project concept's system (``target``). The terminology layer
applies the maps before the ValueSets, so the rules never change. Conventions (see
docs/site-mapping.md):

- an Observation code, a drug (formulary) code or an order code maps like any coding;
- coded answers (``valueCodeableConcept``) map the same way; where an answer code is shared by
  several questions, ``target.dependsOn`` (property ``OBSERVATION_PROPERTY``) names the
  observation concept it answers;
- text answers (``valueString``, or an answer's ``text``) use the source system ``ANSWER_TEXT``
  (codes compared case-insensitively), ``valueBoolean`` the source system ``ANSWER_BOOLEAN``
  (codes ``true``/``false``), both with ``dependsOn``;
- units: a group whose target is UCUM (``mm`` or ``cm``) maps a local unit code, with the factor
  in the ``EXT_UNIT_FACTOR`` extension of the target.

A map that cannot be trusted (no source system, a target that is no project concept, an
equivalence that does not make the local code an instance of the target) stops start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.plan_builder.canonical import BASE, EXT
from services.plan_builder.errors import KnowledgeError
from services.plan_builder.terminology import Terminology, Translation, normalize_text
from services.plan_builder.types import JSON

ANSWER_TEXT = BASE + "/CodeSystem/answer-text"
ANSWER_BOOLEAN = BASE + "/CodeSystem/answer-boolean"
OBSERVATION_PROPERTY = BASE + "/CodeSystem/oi-observation#observation"
EXT_UNIT_FACTOR = EXT + "conceptmap-unit-factor"
UCUM = "http://unitsofmeasure.org"
UNIT_TARGETS = frozenset({"mm", "cm"})
# the target is the source, or wider than it: the local code is an instance of the target
COUNTS = frozenset({"equivalent", "equal", "wider", "subsumes"})


class SiteError(KnowledgeError):
    """A site directory that cannot be trusted: the service must not start on it."""


@dataclass(frozen=True)
class Site:
    directory: Path | None
    maps: tuple[JSON, ...]
    translations: Mapping[tuple[str, str], tuple[Translation, ...]]

    def mapped_sources(self, value_set: str, term: Terminology) -> list[tuple[str, str]]:
        """Local (system, code) pairs that count as a member of the ValueSet."""
        out = []
        for (system, code), targets in self.translations.items():
            if system in (ANSWER_TEXT, ANSWER_BOOLEAN):
                continue
            if any(t.depends_on is None and value_set in term.lookup(t.system, t.code) for t in targets):
                out.append((system, code))
        return sorted(out)


NO_SITE = Site(None, (), {})


def text_code(text: str) -> str:
    return normalize_text(text).strip()


def load_site(directory: Path, term: Terminology, project_systems: frozenset[str]) -> Site:
    """Read and check every ConceptMap of a site directory."""
    if not directory.is_dir():
        raise SiteError(f"site directory {directory} does not exist")
    maps: list[JSON] = []
    translations: dict[tuple[str, str], list[Translation]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SiteError(f"{path.name}: not readable JSON ({exc})") from exc
        if not isinstance(resource, dict) or resource.get("resourceType") != "ConceptMap":
            raise SiteError(f"{path.name}: a site directory holds ConceptMaps only")
        for source, target in _check_map(path.name, resource, term, project_systems):
            translations.setdefault(source, []).append(target)
        maps.append(resource)
    if not maps:
        raise SiteError(f"site directory {directory} holds no ConceptMap")
    return Site(directory, tuple(maps), {k: tuple(v) for k, v in translations.items()})


def _check_map(
    name: str, cmap: JSON, term: Terminology, project_systems: frozenset[str]
) -> list[tuple[tuple[str, str], Translation]]:
    if not isinstance(cmap.get("url"), str):
        raise SiteError(f"{name}: a ConceptMap needs a canonical url")
    groups = cmap.get("group")
    if not isinstance(groups, list) or not groups:
        raise SiteError(f"{name}: a ConceptMap needs at least one group")
    out = []
    for g, group in enumerate(groups):
        where = f"{name} group[{g}]"
        source, target = group.get("source"), group.get("target")
        if not isinstance(source, str) or not source:
            raise SiteError(f"{where}: group.source (the local code system) is missing")
        if not isinstance(target, str) or not (target in project_systems or target == UCUM):
            raise SiteError(f"{where}: group.target {target!r} is not a system of the project's concepts")
        for e, element in enumerate(group.get("element") or ()):
            code = element.get("code")
            if not isinstance(code, str) or not code.strip():
                raise SiteError(f"{where} element[{e}]: element.code is missing")
            if source == ANSWER_TEXT:
                code = text_code(code)
            for t, mapped in enumerate(element.get("target") or ()):
                at = f"{where} element[{e}] target[{t}]"
                if mapped.get("equivalence") not in COUNTS:
                    continue  # narrower, inexact, unmatched...: the local code is not the concept
                translation = _translation(at, target, mapped, term)
                out.append(((source, code.strip()), translation))
    return out


def _translation(at: str, system: str, mapped: JSON, term: Terminology) -> Translation:
    code = mapped.get("code")
    if not isinstance(code, str) or not code:
        raise SiteError(f"{at}: target.code is missing")
    if system == UCUM:
        factor = next(
            (e.get("valueDecimal") for e in mapped.get("extension", []) if e.get("url") == EXT_UNIT_FACTOR),
            1.0,
        )
        if code not in UNIT_TARGETS or not isinstance(factor, int | float) or factor <= 0:
            raise SiteError(f"{at}: a unit maps to UCUM mm or cm with a positive factor")
        return Translation(system, code, None, float(factor))
    if not term.lookup(system, code):
        raise SiteError(f"{at}: {system}|{code} is not a project concept (in no ValueSet of the knowledge)")
    depends = [
        d.get("value") for d in mapped.get("dependsOn") or () if d.get("property") == OBSERVATION_PROPERTY
    ]
    return Translation(system, code, depends[0] if depends else None)


@dataclass(frozen=True, slots=True)
class ObservationFact:
    """A fact read from Observations: the question's ValueSet and, if coded, the answers'."""

    label: str
    question: str
    answers: str | None
    fact: str  # the %facts name it supplies


def _standard_members(term: Terminology, value_set: str) -> bool:
    """Whether the ValueSet holds codes an EHR may use as they are (any non-project system)."""
    return any(value_set in vids and not system.startswith(BASE) for (system, _), vids in term.codes.items())


def _answer_maps(site: Site, term: Terminology, fact: ObservationFact) -> bool:
    assert fact.answers is not None
    return any(
        (t.depends_on in (None, fact.question)) and fact.answers in term.lookup(t.system, t.code)
        for targets in site.translations.values()
        for t in targets
    )


def unavailable(site: Site, term: Terminology, facts: tuple[ObservationFact, ...]) -> list[tuple[str, str]]:
    """The facts this site cannot supply, and why: no local code maps to the question (and the
    knowledge lists only the project's own codes, which no EHR records), or none to the answers."""
    out = []
    for fact in facts:
        if not (_standard_members(term, fact.question) or site.mapped_sources(fact.question, term)):
            out.append((fact.label, f"no local code is mapped to {fact.question}"))
        elif fact.answers and not (_standard_members(term, fact.answers) or _answer_maps(site, term, fact)):
            out.append((fact.label, f"no local answer is mapped to {fact.answers}"))
    return out


def _answer_label(system: str, code: str) -> str:
    if system == ANSWER_TEXT:
        return f"text {code!r}"
    if system == ANSWER_BOOLEAN:
        return f"boolean {code}"
    return f"{system}|{code}"


def describe(site: Site, term: Terminology, value_sets: Mapping[str, str]) -> list[str]:
    """Human lines: what the site maps, per concept (for ``oi-cds check-site``)."""
    lines = []
    for value_set, label in value_sets.items():
        sources = site.mapped_sources(value_set, term)
        answers = sorted(
            f"{_answer_label(system, code)} -> {t.code}"
            for (system, code), targets in site.translations.items()
            for t in targets
            if value_set in term.lookup(t.system, t.code)
            and (t.depends_on or system in (ANSWER_TEXT, ANSWER_BOOLEAN))
        )
        if sources or answers:
            shown = ", ".join([f"{s}|{c}" for s, c in sources] + answers)
            lines.append(f"  {label} ({value_set}): {shown}")
    return lines
