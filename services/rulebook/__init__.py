"""The rule book: one generated document per knowledge version, for the committee that approves
the rules (served at /knowledge, written by ``oi-cds rulebook``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.plan_builder.knowledge import Knowledge, load_knowledge
from services.plan_builder.orders import OrderChecker
from services.plan_builder.planner import Planner
from services.plan_builder.settings import PlanSettings
from services.rulebook import diagram, html
from services.rulebook.book import Book, build_book
from services.rulebook.diff import artifact_diff
from services.rulebook.errors import RuleBookError
from services.rulebook.examples import run_examples

__all__ = ["Book", "RuleBookError", "Sources", "build", "render_html"]

ROOT = Path(__file__).resolve().parents[2]  # a source checkout; an installed wheel has none of it


@dataclass(frozen=True)
class Sources:
    """What the book reads besides the knowledge; None where this installation lacks it."""

    source_text: Path | None = ROOT / "docs" / "clinical" / "oi-management-summary.md"
    changelog: Path | None = ROOT / "docs" / "knowledge-changelog.md"
    vignettes: Path | None = ROOT / "tests" / "data" / "vignettes"
    previous: Path | None = None  # a previous knowledge directory, for the artifact diff


def _read(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None


def build(knowledge: Knowledge, settings: PlanSettings, sources: Sources = Sources()) -> Book:
    planner, checker = Planner(knowledge, settings), OrderChecker(knowledge, settings)
    examples = run_examples(sources.vignettes, planner, checker) if sources.vignettes else None
    diff = artifact_diff(load_knowledge(sources.previous), knowledge) if sources.previous else []
    return build_book(
        knowledge,
        settings,
        source_text=_read(sources.source_text),
        examples=examples,
        changelog=_read(sources.changelog),
        artifact_diff=diff,
    )


def render_html(book: Book, built_on: str) -> str:
    return html.render(book, diagram.svg(book.rules), built_on)
