"""Dependencies as Annotated aliases."""

# async on purpose: FastAPI runs plain `def` dependencies in a worker thread, one hop each.

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.cds_hooks.auth import Verifier
from services.cds_hooks.config import Settings
from services.cds_hooks.service import HookEnv, ServiceDefinition
from services.cds_hooks.store import FeedbackStore
from services.plan_builder import Knowledge


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_knowledge(request: Request) -> Knowledge:
    knowledge: Knowledge = request.app.state.knowledge
    return knowledge


async def get_store(request: Request) -> FeedbackStore:
    store: FeedbackStore = request.app.state.store
    return store


async def get_registry(request: Request) -> dict[str, ServiceDefinition]:
    services: dict[str, ServiceDefinition] = request.app.state.registry
    return services


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a hook call needs, resolved as one dependency (the hot path pays per dependency)."""

    settings: Settings
    env: HookEnv
    registry: dict[str, ServiceDefinition]


async def get_services(request: Request) -> Services:
    state = request.app.state
    return Services(state.settings, state.env, state.registry)


async def require_jwt(request: Request) -> None:
    """CDS Hooks client JWT on discovery, hook, feedback and admin calls (when required).

    The audience is the URL as the EHR called it: OI_CDS_PUBLIC_BASE_URL + path when set
    (behind a proxy request.url differs), else the URL the request arrived at. A feedback
    token may name the feedback URL or its service's URL.
    """
    settings: Settings = request.app.state.settings
    if not settings.auth_required:
        return
    # outside demo mode the service does not start without a public base URL (startup_problem):
    # the Host header never chooses the audience
    base = (settings.public_base_url or str(request.base_url)).rstrip("/")
    path = request.url.path
    audiences = [base + path]
    if path.endswith("/feedback"):
        audiences.append(base + path.removesuffix("/feedback"))
    verifier: Verifier = request.app.state.verifier
    request.state.jwt = await verifier.verify(request.headers.get("authorization"), audiences)


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
KnowledgeDep = Annotated[Knowledge, Depends(get_knowledge)]
StoreDep = Annotated[FeedbackStore, Depends(get_store)]
RegistryDep = Annotated[dict[str, ServiceDefinition], Depends(get_registry)]
