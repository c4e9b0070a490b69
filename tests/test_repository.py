"""Promises the repository makes to a newcomer: the README, CI and settings agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def test_readme_settings_table_is_generated_from_settings() -> None:
    from services.cli import settings_table

    start = README.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = README.index("<!-- settings-table:end -->")
    assert README[start:end].strip() == settings_table(), "run `make examples`"


def test_settings_read_a_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.cds_hooks.config import Settings

    (tmp_path / ".env").write_text(
        "OI_CDS_TIMEZONE=Europe/Paris\nOI_CDS_FHIR_ALLOWLIST=https://a.example.org/fhir,https://b.example.org\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.timezone == "Europe/Paris"
    assert settings.fhir_allowlist == ["https://a.example.org/fhir", "https://b.example.org"]
    monkeypatch.setenv("OI_CDS_FHIR_ALLOWLIST", "ftp://nope")
    with pytest.raises(ValueError, match="absolute http"):
        Settings()


def test_the_card_icon_is_the_one_tools_make_icon_draws() -> None:
    from tools.make_icon import OUT, png

    assert OUT.read_bytes() == png()  # regenerate with `python -m tools.make_icon`, never by hand
