"""The README's curl examples work as written (against a test server in demo mode)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.regenerate_examples import write_requests

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
# the demo-mode examples (`make run`); the token ones are exercised by test_auth.py with the same commands
CURLS = [
    line
    for line in README.splitlines()
    if line.startswith("curl ")
    and "http://127.0.0.1:8000" in line
    and "$(" not in line
    and "$TOKEN" not in line
]


def test_readme_has_curl_examples() -> None:
    assert len(CURLS) >= 3


@pytest.mark.skipif(
    shutil.which("curl") is None, reason="curl is not installed: the README's curl lines cannot be run"
)
@pytest.mark.parametrize("line", CURLS)
def test_curl_example(line: str, service: str) -> None:
    command = shlex.split(line.replace("http://127.0.0.1:8000", service))
    run = subprocess.run(
        [*command, "-w", "\\n%{http_code}"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    body, _, status = run.stdout.rpartition("\n")
    assert status == "200", body
    assert isinstance(json.loads(body), dict)


def test_example_requests_are_current(tmp_path: Path) -> None:
    write_requests(tmp_path)
    current = {p.name: p.read_text() for p in (ROOT / "docs" / "examples").glob("*.json")}
    assert current == {p.name: p.read_text() for p in tmp_path.glob("*.json")}, "run `make examples`"
