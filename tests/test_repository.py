"""Promises the repository makes to a newcomer: the README, CI and settings agree."""

from __future__ import annotations

import re
from pathlib import Path

from services.cds_hooks.config import Settings
from services.plan_builder.settings import PlanSettings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_nothing_reads_the_shared_folder() -> None:
    """The project stands alone: tests and code use their own copies of shared data."""
    for folder in ("services", "tests", "benchmarks", "tools", "Makefile"):
        paths = [ROOT / folder] if (ROOT / folder).is_file() else (ROOT / folder).rglob("*.py")
        for path in paths:
            if path == Path(__file__):
                continue
            assert "../shared" not in path.read_text(), path


def test_readme_documents_every_setting() -> None:
    documented = set(re.findall(r"`(OI_CDS_[A-Z_]+)`", README))
    top = {f"OI_CDS_{name.upper()}" for name in Settings.model_fields if name != "plan"}
    assert top <= documented
    for name in PlanSettings.model_fields:
        variable = f"OI_CDS_PLAN__{name.upper()}"
        if name.startswith("maturity_age_"):
            assert "OI_CDS_PLAN__MATURITY_AGE_FEMALE" in documented
            continue
        assert variable in documented, variable
