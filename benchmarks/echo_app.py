"""The baseline for the load benchmark: a trivial FastAPI app that echoes the hook request.

It does the JSON work every JSON service does and nothing else: parse the body (stdlib json)
and serialize it back.
"""

import json

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/cds-services/{service_id}")
async def echo(service_id: str, request: Request) -> Response:
    return Response(json.dumps(json.loads(await request.body())), media_type="application/json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
