"""Dependencies as Annotated aliases."""

from typing import Annotated

from fastapi import Depends, Request

from services.cds_hooks.config import Settings
from services.cds_hooks.registry import HookEnv, ServiceDefinition
from services.cds_hooks.store import FeedbackStore
from services.plan_builder import Knowledge


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_knowledge(request: Request) -> Knowledge:
    knowledge: Knowledge = request.app.state.knowledge
    return knowledge


def get_env(request: Request) -> HookEnv:
    env: HookEnv = request.app.state.env
    return env


def get_store(request: Request) -> FeedbackStore:
    store: FeedbackStore = request.app.state.store
    return store


def get_registry(request: Request) -> dict[str, ServiceDefinition]:
    services: dict[str, ServiceDefinition] = request.app.state.registry
    return services


SettingsDep = Annotated[Settings, Depends(get_settings)]
KnowledgeDep = Annotated[Knowledge, Depends(get_knowledge)]
HookEnvDep = Annotated[HookEnv, Depends(get_env)]
StoreDep = Annotated[FeedbackStore, Depends(get_store)]
RegistryDep = Annotated[dict[str, ServiceDefinition], Depends(get_registry)]
