"""Instructions per patient, counted by valgrind's callgrind: repeatable on a busy machine.

    python -m benchmarks.instructions [--what plan|facts|hook|hook-big] [--rounds 3] [--tree DIR]

Runs the shared vignettes through the plan builder (validate=True, as the hook path reads)
under callgrind twice, with 0 and with N rounds, and prints the difference per patient: the
start-up (imports, knowledge) cancels out. ``hook`` and ``hook-big`` instead send the load
benchmark's bodies (the OI child, the big record without OI) through the whole ASGI app in
process, HOOK_CALLS calls a round: everything of a hook call but the HTTP server. ``--tree``
measures another checkout (a ``git worktree`` of an earlier commit) with this one's
interpreter, for before/after ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


HOOK_CALLS = 50


def workload(tree: str, what: str, rounds: int) -> None:
    sys.path.insert(0, tree)
    if what.startswith("hook"):
        asyncio.run(hook_workload(what, rounds * HOOK_CALLS))
        return
    from datetime import date

    from services.plan_builder import Planner, load_knowledge
    from tests.conftest import load_vignettes, vignette_bundle

    planner = Planner(load_knowledge())
    cases = []
    for vignette in load_vignettes():
        resources = [e["resource"] for e in vignette_bundle(vignette["id"])["entry"]]
        cases.append((resources[0], resources[1:], date.fromisoformat(vignette["evaluation_date"])))
    run = planner.plan if what == "plan" else planner.facts
    for _ in range(rounds):
        for patient, record, at in cases:
            run(patient, record, at, validate=True)


def hook_scope(path: str = "/cds-services/oi-management") -> dict[str, Any]:
    """An ASGI scope of a hook call (POST, JSON), as uvicorn would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def hook_workload(what: str, calls: int) -> None:
    import orjson

    os.environ.update(
        OI_CDS_DEMO="true",
        OI_CDS_DATABASE_URL="sqlite://",
        OI_CDS_MAX_CONCURRENT_HOOKS="100000",
        OI_CDS_SHED_LOOP_LAG_S="1000",  # valgrind is slow: nothing may be shed
    )
    from starlette.types import Message

    from benchmarks import big_record
    from services.cds_hooks.examples import patient_view_example
    from services.cds_hooks.main import create_app

    body = orjson.dumps(big_record.body() if what == "hook-big" else patient_view_example())
    app = create_app()
    scope = hook_scope()
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async with app.router.lifespan_context(app):
        for _ in range(calls):
            await app(dict(scope, state={}), receive, send)
    assert set(statuses) <= {200}, statuses


def count(tree: Path, what: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/out",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--workload",
            str(tree),
            "--what",
            what,
            "--rounds",
            str(rounds),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same set and dict orders every run
        log = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", log)
    assert found, log
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--what", choices=("plan", "facts", "hook", "hook-big"), default="plan")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        workload(args.workload, args.what, args.rounds)
        return 0
    if shutil.which("valgrind") is None:
        sys.stderr.write("valgrind is not installed (apt-get install valgrind)\n")
        return 2
    sys.path.insert(0, str(args.tree))
    from tests.conftest import load_vignettes

    hook = args.what.startswith("hook")
    patients = (HOOK_CALLS if hook else len(load_vignettes())) * args.rounds
    extra = count(args.tree, args.what, args.rounds) - count(args.tree, args.what, 0)
    print(
        f"{args.tree}: {args.what}: {extra / patients:,.0f} instructions per {'call' if hook else 'patient'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
