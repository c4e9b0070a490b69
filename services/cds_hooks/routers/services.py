"""Discovery and the hook calls."""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from services.cds_hooks import explain, metrics, shadow
from services.cds_hooks.body import json_object, read_json
from services.cds_hooks.cards import could_not_run_card, link_rule_book
from services.cds_hooks.deps import RegistryDep, Services, ServicesDep
from services.cds_hooks.errors import BadRequest, Msg, NotFound, PreconditionFailed
from services.cds_hooks.events import EventSink
from services.cds_hooks.examples import HOOK_OPENAPI
from services.cds_hooks.models import CdsResponse, Discovery, HookRequest
from services.cds_hooks.service import ServiceDefinition, Trace
from services.plan_builder.errors import first_problem
from services.plan_builder.types import JSON

router = APIRouter(tags=["CDS Hooks"])


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def first_error(exc: ValidationError, prefix: str) -> str:
    where, what = first_problem(exc.errors())
    return f"{prefix}{'.' + where if where else ''}: {what}"


@router.get("/cds-services", response_model=Discovery, summary="CDS Hooks discovery")
async def discovery(services: RegistryDep, request: Request) -> Response:
    prefetch = request.app.state.prefetch_templates
    return json_response(Discovery(services=[s.discovery(prefetch) for s in services.values()]).wire())


def demo_fhir_bases(request: Request, public_base_url: str | None) -> list[str]:
    """The demo FHIR server's own URLs: the address this socket is bound to (never the Host
    header, which a caller chooses) on 127.0.0.1 / localhost, and the public base URL."""
    server = request.scope.get("server") or ("127.0.0.1", None)
    host, port = server[0], server[1]
    suffix = f":{port}" if port else ""
    hosts = {"127.0.0.1", "localhost", host} if host in ("127.0.0.1", "localhost", "::1") else {host}
    bases = [f"http://{h}{suffix}/demo-fhir" for h in sorted(hosts)]
    if public_base_url:
        bases.append(public_base_url.rstrip("/") + "/demo-fhir")
    return bases


def service_of(services: dict[str, ServiceDefinition], service_id: str) -> ServiceDefinition:
    service = services.get(service_id)
    if service is None:
        raise NotFound(f"no CDS service {service_id!r}; see GET /cds-services", msg=Msg.UNKNOWN_SERVICE)
    return service


@router.post(
    "/cds-services/{service_id}",
    response_model=CdsResponse,
    summary="Call a CDS service",
    openapi_extra=HOOK_OPENAPI,
)
async def call_service(service_id: str, request: Request, deps: ServicesDep) -> Response:
    # Hook calls are answered by hook_endpoint.HookEndpoint (no FastAPI routing); this route
    # documents them in the OpenAPI document and answers an unknown service id.
    service = service_of(deps.registry, service_id)
    body = await read_json(request, deps.settings.max_body_bytes)
    return json_response(await answer(service, request, deps, body))


async def answer(service: ServiceDefinition, request: Request, deps: Services, body: Any) -> JSON:
    """One hook call, from its parsed body to the CDS Hooks response document."""
    body = json_object(body, "the hook request")
    try:
        hook_request = HookRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(first_error(exc, "invalid hook request"), msg=Msg.INVALID_HOOK_REQUEST) from exc
    # a client-chosen id, logged to tie our lines to the EHR's; cut to a sane length
    request.scope.setdefault("state", {})["hook_instance"] = hook_request.hookInstance[:64]
    if hook_request.hook != service.hook:
        raise BadRequest(
            f"service {service.id!r} answers the {service.hook!r} hook, not {hook_request.hook!r}",
            msg=Msg.WRONG_HOOK,
        )
    try:
        context = service.context_model.model_validate(hook_request.context)
    except ValidationError as exc:
        raise BadRequest(first_error(exc, "invalid context"), msg=Msg.INVALID_CONTEXT) from exc
    settings = deps.settings
    at = settings.today()
    env = deps.env
    if explain.asked(request):
        explain.allow(request, settings)
        env = replace(env, trace=Trace())
    elif settings.mode == "shadow":
        env = replace(env, trace=Trace(explain=False))  # what would have been shown, by key
    if settings.demo and hook_request.fhirServer:
        # the demo FHIR server is allow-listed under whatever host the service is reached by
        env = replace(env, fhir=env.fhir.with_allowed(demo_fhir_bases(request, settings.public_base_url)))
    started = time.monotonic()
    try:
        try:
            if hook_request.fhirServer:
                # a slow FHIR server never holds the call past its deadline (a timeout scope:
                # no extra task per call, unlike wait_for)
                async with asyncio.timeout(settings.hook_deadline_s):
                    cards = await service.handler(hook_request, context, at, env)
            else:
                cards = await service.handler(hook_request, context, at, env)  # nothing to await
            if time.monotonic() - started > settings.hook_deadline_s:
                # the work never awaited, so the timeout could not interrupt it: the deadline
                # is still the deadline (an answer this late is not one the EHR waits for)
                raise TimeoutError
        except TimeoutError as exc:
            metrics.child(metrics.PRECONDITION_FAILED, "deadline").inc()
            raise PreconditionFailed(
                f"required FHIR data could not be obtained within {settings.hook_deadline_s:g} s",
                msg=Msg.DEADLINE,
            ) from exc
        except PreconditionFailed:
            metrics.child(metrics.PRECONDITION_FAILED, "data-unavailable").inc()
            raise
    except PreconditionFailed as exc:
        if settings.on_missing_data != "card":
            raise
        # Some EHR UIs (and the CDS Hooks Sandbox) show a failed service as "all clear":
        # a site may ask for a card that says the checks did not run instead.
        cards = [could_not_run_card(exc.diagnostics)]
    events: EventSink = request.app.state.events
    if settings.mode == "shadow":
        cards = shadow.answer(events, settings, service.id, hook_request, at, env.trace, cards)
    if cards:
        topics = [card["source"]["topic"]["code"] for card in cards]
        events.shown(at, service.id, topics)
        for topic in topics:
            metrics.child(metrics.CARDS, service.id, topic).inc()
        # absolute links: the public base URL when set (behind a proxy), else the URL called
        link_rule_book(
            cards, settings.public_base_url.rstrip("/") if settings.public_base_url else base_url(request)
        )
    if env.trace is not None and env.trace.explain:
        why = explain.explanation(hook_request, env, env.trace, (time.monotonic() - started) * 1000)
        return {"cards": cards, "extension": {explain.EXTENSION: why}}
    return {"cards": cards}


def base_url(request: Request) -> str:
    """The URL the service was called at, without a trailing slash (request.base_url, memoized
    on what it is made of: it is asked on every hook call)."""
    scope = request.scope
    return _base_url(
        scope.get("scheme", "http"),
        request.headers.get("host"),
        tuple(scope["server"]) if scope.get("server") else None,
        scope.get("root_path", ""),
    )


@functools.lru_cache(maxsize=64)
def _base_url(scheme: str, host: str | None, server: tuple[str, int] | None, root_path: str) -> str:
    headers = [(b"host", host.encode("latin-1"))] if host is not None else []
    scope: dict[str, Any] = {"type": "http", "scheme": scheme, "server": server, "root_path": root_path}
    scope.update(path="/", headers=headers)
    return str(Request(scope).base_url).rstrip("/")
