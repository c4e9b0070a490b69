"""Dependencies as Annotated aliases."""

from typing import Annotated

from fastapi import Depends, Request

from services.cds_hooks.config import Settings
from services.plan_builder import Knowledge


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_knowledge(request: Request) -> Knowledge:
    knowledge: Knowledge = request.app.state.knowledge
    return knowledge


SettingsDep = Annotated[Settings, Depends(get_settings)]
KnowledgeDep = Annotated[Knowledge, Depends(get_knowledge)]
