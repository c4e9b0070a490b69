"""The service with patient-view's clinical work taken out: a floor for the load benchmark.

    uvicorn --factory benchmarks.fixed_answer:create_app

Everything of a hook call runs as deployed (admission, the hook layer, request validation,
rule-book links, metrics, the log line, the 8.3 KB answer) except the handler: the first
call computes the cards as usual; later calls get a fresh copy of them without reading the
prefetch (no data gathering, facts, rules, CarePlan or card building, card uuids included:
the copies repeat the first call's). What this app reaches against the echo bounds what any
speed-up of the clinical work could reach.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import orjson
from fastapi import FastAPI

from services.cds_hooks.main import create_app as create_service
from services.cds_hooks.models import HookRequest
from services.cds_hooks.service import HookEnv
from services.plan_builder.types import JSON

SERVICE = "oi-management"


def create_app() -> FastAPI:
    app = create_service()
    service = app.state.registry[SERVICE]
    first: list[bytes] = []

    async def fixed(request: HookRequest, context: Any, at: date, env: HookEnv) -> list[JSON]:
        if not first:
            first.append(orjson.dumps(await service.handler(request, context, at, env)))
        cards: list[JSON] = orjson.loads(first[0])  # fresh dicts: the answer is stamped per call
        return cards

    app.state.registry[SERVICE] = dataclasses.replace(service, handler=fixed)
    return app
