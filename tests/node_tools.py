"""Software nobody here wrote, run under Node.js: installed by npm into a folder of tests/ on
first use (node_modules is never committed), and the tests that need it skip, saying why, where
Node.js, npm or the registry is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent
HL7 = TESTS / "hl7"


def npm_installed(folder: Path, probe: str) -> str | None:
    """None when folder's packages are installed (probe: a path under node_modules), else why not."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "Node.js and npm are not installed"
    if (folder / "node_modules" / probe).exists():
        return None
    run = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return None if run.returncode == 0 else f"npm install in {folder.name} failed: {run.stderr[-300:]}"


class Hl7Tools:
    """HL7's FHIR R4 JSON Schema and fhirpath.js (tests/hl7/check.cjs), one node run per call."""

    def run(self, **input: Any) -> dict[str, Any]:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
            json.dump(input, file)
            file.flush()
            out = subprocess.run(
                ["node", str(HL7 / "check.cjs"), file.name], capture_output=True, text=True, timeout=300
            )
        assert out.returncode == 0, out.stderr[-2000:]
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def schema_problems(self, resources: list[dict[str, Any]]) -> list[list[str]]:
        """Per resource, what HL7's R4 JSON Schema says is wrong with it (empty: valid)."""
        problems: list[list[str]] = self.run(resources=resources)["resources"]
        return problems

    def fhirpath(self, cases: list[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
        """fhirpath.js's result for each (expression, environment variables) on an empty resource."""
        results: list[list[Any]] = self.run(fhirpath=[{"expression": e, "env": env} for e, env in cases])[
            "fhirpath"
        ]
        return results
