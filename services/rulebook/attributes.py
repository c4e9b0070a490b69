"""Source attributes of the interventions, in the spirit of ONC HTI-1's decision-support
transparency requirements for evidence-based interventions, read from the FHIR artifacts
(PlanDefinition title, publisher/author, purpose, useContext, usage, relatedArtifact, date,
effectivePeriod, version, copyright) so the book and the /fhir face say the same.

A required attribute that is absent stops the build; an optional one with no true value says
"not stated in the source", never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.plan_builder.types import JSON
from services.rulebook.errors import RuleBookError

NOT_STATED = "not stated in the source"
FUNDING = "https://oi-cds.example.org/StructureDefinition/dsi-funding-source"


@dataclass(frozen=True)
class SourceAttributes:
    artifact: str  # PlanDefinition/<id>
    name: str
    developer: str
    funding: str
    intended_use: str
    population: str
    users: str
    cautions: str
    citations: tuple[str, ...]
    release_date: str
    revision_date: str
    version: str
    copyright: str

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("Name", self.name),
            ("Developer", self.developer),
            ("Funding source", self.funding),
            ("Intended use", self.intended_use),
            ("Intended patient population", self.population),
            ("Intended users", self.users),
            ("Cautions and out-of-scope use", self.cautions),
            ("Bibliographic citation of the evidence", "; ".join(self.citations)),
            ("Release date", self.release_date),
            ("Revision date", self.revision_date),
            ("Knowledge version", self.version),
            ("Copyright and licence", self.copyright),
        ]


def _context(plan: JSON, code: str) -> str | None:
    for ctx in plan.get("useContext") or ():
        if (ctx.get("code") or {}).get("code") == code:
            concept = ctx.get("valueCodeableConcept") or {}
            return concept.get("text") or next(
                (c.get("display") or c.get("code") for c in concept.get("coding") or ()), None
            )
    return None


def source_attributes(plan: JSON) -> SourceAttributes:
    where = f"PlanDefinition/{plan.get('id')}"

    def required(value: str | None, attribute: str, element: str) -> str:
        if not value:
            raise RuleBookError(f"{where}: the source attribute {attribute!r} is missing (FHIR {element})")
        return value

    authors = ", ".join(a.get("name", "") for a in plan.get("author") or () if a.get("name"))
    funding = next(
        (e.get("valueString") for e in plan.get("extension") or () if e.get("url") == FUNDING), None
    )
    citations = tuple(
        str(a.get("display") or a.get("citation") or a.get("label"))
        for a in plan.get("relatedArtifact") or ()
        if a.get("type") in ("citation", "documentation")
    )
    if not citations:
        raise RuleBookError(f"{where}: the source attribute 'citation' is missing (FHIR relatedArtifact)")
    return SourceAttributes(
        artifact=where,
        name=required(plan.get("title"), "name", "title"),
        developer=required(
            "; ".join(x for x in (plan.get("publisher"), authors) if x), "developer", "publisher or author"
        ),
        funding=funding or NOT_STATED,
        intended_use=required(plan.get("purpose"), "intended use", "purpose"),
        population=required(_context(plan, "focus"), "intended patient population", "useContext focus"),
        users=_context(plan, "user") or NOT_STATED,
        cautions=required(plan.get("usage"), "cautions", "usage"),
        citations=citations,
        release_date=required(
            (plan.get("effectivePeriod") or {}).get("start"), "release date", "effectivePeriod.start"
        ),
        revision_date=required(plan.get("date"), "revision date", "date"),
        version=required(plan.get("version"), "knowledge version", "version"),
        copyright=plan.get("copyright") or NOT_STATED,
    )
