"""The lean baseline for the load benchmark (issue 10): a FastAPI app that parses the body with
orjson and returns a small fixed cards document (about 130 bytes), doing nothing else."""

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
ANSWER = orjson.dumps(
    {
        "cards": [
            {
                "uuid": "00000000-0000-4000-8000-000000000000",
                "summary": "echo",
                "indicator": "info",
                "source": {"label": "echo"},
            }
        ]
    }
)


@app.post("/cds-services/{service_id}")
async def echo(service_id: str, request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(ANSWER, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
