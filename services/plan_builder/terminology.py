"""Value sets from fhir_profiles/ compiled into a fast code index, plus name matching.

Codes are looked up as (system, code) -> the ids of every ValueSet that holds them, following
``compose.include.valueSet``. ICD-10-CM families are written as ``regex`` filters on the code
(the initial-encounter 7th character is part of the pattern). Drugs and rods are also
recognised by the names a ValueSet lists in its ``valueset-match-name`` extensions, because EHRs
send local formulary codes with a display.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.plan_builder.canonical import EXT
from services.plan_builder.types import JSON

EXT_MATCH_NAME = EXT + "valueset-match-name"
EXT_MATCH_PREFIX = EXT + "valueset-match-ingredient-prefix"
EXT_EXCLUDE_NAME = EXT + "valueset-exclude-name"
EXT_EXCLUDE_ROUTE = EXT + "valueset-exclude-route"
EXT_PRIORITY = EXT + "valueset-match-priority"
EXT_IMPLIED_SEVERITY = EXT + "valueset-implied-severity"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

_NON_WORD = re.compile(r"[^0-9a-z]+")
# how product names join their ingredients: RxNorm "A 10 MG / B 5 MG", "A + B", "A, B", "A and B"
_INGREDIENT_SPLIT = re.compile(r"\s*(?:/|\+|,|;|\band\b|\bwith\b)\s*", re.IGNORECASE)
_EMPTY: frozenset[str] = frozenset()


def normalize_text(text: str) -> str:
    """Lower case, punctuation folded to spaces, padded so ' word ' tests a word boundary."""
    return " " + " ".join(_NON_WORD.sub(" ", text.lower()).split()) + " "


def normalize_code(system: str, code: str) -> str:
    code = code.strip()
    if system == ICD10CM:
        # EHR exports often drop the dot (S72301A); ICD-10-CM's dot always follows 3 chars.
        code = code.upper()
        if len(code) > 3 and "." not in code:
            code = code[:3] + "." + code[3:]
    return code


def vs_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1].split("|", 1)[0]


@dataclass(frozen=True, slots=True)
class NameRule:
    names: tuple[str, ...]
    exclude_names: tuple[str, ...]
    exclude_routes: tuple[str, ...]
    priority: int
    prefixes: tuple[str, ...] = ()  # names that count only where an ingredient begins


def ingredient_starts(texts: Iterable[str]) -> list[str]:
    """Each ingredient of each text, normalized (' calcium carbonate 500 mg ')."""
    return [normalize_text(part) for t in texts for part in _INGREDIENT_SPLIT.split(t) if part.strip()]


@dataclass(frozen=True, slots=True)
class Translation:
    """A site's local code counted as a project concept (from a site ConceptMap)."""

    system: str
    code: str
    depends_on: str | None = None  # the observation concept an answer belongs to
    factor: float | None = None  # unit conversion: local value x factor = value in the target unit


@dataclass
class Terminology:
    codes: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    patterns: dict[str, list[tuple[re.Pattern[str], frozenset[str]]]] = field(default_factory=dict)
    name_rules: dict[str, NameRule] = field(default_factory=dict)
    implied_severity: dict[str, tuple[str, str]] = field(default_factory=dict)  # vs id -> coding
    titles: dict[str, str] = field(default_factory=dict)
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # site maps: (local system, local code) -> project concepts; applied before the ValueSets
    translations: dict[tuple[str, str], tuple[Translation, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, value_sets: Mapping[str, JSON]) -> Terminology:
        """Index every ValueSet by id; ``include.valueSet`` is followed transitively."""
        parents: dict[str, set[str]] = {}  # child vs id -> vs ids that include it
        direct_codes: dict[tuple[str, str], set[str]] = {}
        direct_patterns: list[tuple[str, str, str]] = []
        term = cls()
        for vid, vs in value_sets.items():
            term.titles[vid] = vs.get("title", vid)
            kids: list[str] = []
            for inc in vs.get("compose", {}).get("include", []):
                for child in inc.get("valueSet", []):
                    parents.setdefault(vs_id(child), set()).add(vid)
                    kids.append(vs_id(child))
                system = inc.get("system")
                if not system:
                    continue
                for concept in inc.get("concept", []):
                    key = (system, normalize_code(system, concept["code"]))
                    direct_codes.setdefault(key, set()).add(vid)
                for flt in inc.get("filter", []):
                    if flt.get("op") != "regex" or flt.get("property") != "code":
                        raise ValueError(f"ValueSet {vid}: only code regex filters are supported")
                    direct_patterns.append((system, flt["value"], vid))
            term.children[vid] = tuple(kids)
            for ext in vs.get("extension", []):
                if ext.get("url") == EXT_IMPLIED_SEVERITY:
                    coding = ext["valueCoding"]
                    term.implied_severity[vid] = (coding["system"], coding["code"])
            rule = _name_rule(vs)
            if rule is not None:
                term.name_rules[vid] = rule

        def closure(vid: str) -> frozenset[str]:
            seen = {vid}
            stack = [vid]
            while stack:
                for parent in parents.get(stack.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            return frozenset(seen)

        closures = {vid: closure(vid) for vid in value_sets}
        for key, vids in direct_codes.items():
            term.codes[key] = frozenset().union(*(closures[v] for v in vids))
        for system, pattern, vid in direct_patterns:
            term.patterns.setdefault(system, []).append((re.compile(pattern), closures[vid]))
        return term

    def lookup(self, system: str, code: str) -> frozenset[str]:
        found = self._lookup(system, code)
        if self.translations:
            for t in self.translations.get((system, code.strip()), ()):
                if t.depends_on is None:
                    found = found | self._lookup(t.system, t.code)
        return found

    def translate(self, system: str, code: str, depends_on: str | None = None) -> list[Translation]:
        """The coding itself, then the project concepts a site map makes of it."""
        out = [Translation(system, code)]
        for t in self.translations.get((system, code.strip()), ()):
            if t.depends_on is None or t.depends_on == depends_on:
                out.append(t)
        return out

    def _lookup(self, system: str, code: str) -> frozenset[str]:
        patterns = self.patterns.get(system)
        if patterns is None and system != ICD10CM:
            # the common case (most codes of a record are in no value set): one dict probe
            return self.codes.get((system, code)) or self.codes.get((system, code.strip()), _EMPTY)
        code = normalize_code(system, code)
        found = self.codes.get((system, code), _EMPTY)
        for pattern, vids in patterns or ():
            if pattern.fullmatch(code):
                found = found | vids
        return found

    def coded(self, concept: JSON | None) -> frozenset[str]:
        """ValueSet ids that any coding of a CodeableConcept belongs to."""
        if not concept:
            return _EMPTY
        found = _EMPTY
        for coding in concept.get("coding") or ():
            system, code = coding.get("system"), coding.get("code")
            if system and code:
                hit = self.lookup(system, code)
                if hit:
                    found = found | hit if found else hit
        return found

    def named(self, texts: Iterable[str], routes: Iterable[str] = ()) -> frozenset[str]:
        """ValueSet ids whose names occur, as whole words, in any of the texts."""
        norm = [normalize_text(t) for t in texts if t]
        if not norm:
            return frozenset()
        route_text = [normalize_text(r) for r in routes if r]
        found = set()
        starts: list[str] | None = None
        for vid, rule in self.name_rules.items():
            if any(f" {n} " in t for n in rule.names for t in norm):
                found.add(vid)
            elif rule.prefixes:
                starts = starts if starts is not None else ingredient_starts(t for t in texts if t)
                if any(s.startswith(f" {p} ") for p in rule.prefixes for s in starts):
                    found.add(vid)
        return frozenset(vid for vid in found if not self.excluded(vid, norm, route_text))

    def excluded(self, vid: str, norm_texts: list[str], norm_routes: list[str]) -> bool:
        rule = self.name_rules.get(vid)
        if rule is None:
            return False
        if any(f" {n} " in t for n in rule.exclude_names for t in norm_texts):
            return True
        return any(f" {r} " in t for r in rule.exclude_routes for t in norm_routes)

    def first_by_priority(self, vids: Iterable[str]) -> str | None:
        ranked = [(self.name_rules[v].priority, v) for v in vids if v in self.name_rules]
        return min(ranked)[1] if ranked else None


def _strings(vs: JSON, url: str) -> tuple[str, ...]:
    return tuple(
        normalize_text(str(e["valueString"])).strip() for e in vs.get("extension", []) if e.get("url") == url
    )


def _name_rule(vs: JSON) -> NameRule | None:
    names = _strings(vs, EXT_MATCH_NAME)
    prefixes = _strings(vs, EXT_MATCH_PREFIX)
    if not names and not prefixes:
        return None
    priority: Any = next(
        (e.get("valueInteger") for e in vs.get("extension", []) if e.get("url") == EXT_PRIORITY),
        1000,
    )
    return NameRule(
        names=names,
        exclude_names=_strings(vs, EXT_EXCLUDE_NAME),
        exclude_routes=_strings(vs, EXT_EXCLUDE_ROUTE),
        priority=int(priority),
        prefixes=prefixes,
    )


def concept_texts(concept: JSON | None) -> list[str]:
    """The human-readable strings of a CodeableConcept: its text and codings' displays."""
    if not concept:
        return []
    out = [c["display"] for c in concept.get("coding") or () if c.get("display")]
    if concept.get("text"):
        out.append(concept["text"])
    return out
