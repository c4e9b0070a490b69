"""The service's one Settings object; every variable has the prefix OI_CDS_."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.plan_builder.settings import PlanSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OI_CDS_", env_nested_delimiter="__", extra="ignore")

    timezone: str = Field(
        "UTC", description="the time zone that turns the request time into the evaluation date"
    )
    knowledge_dir: Path | None = Field(
        None, description="fhir_profiles directory (default: the packaged one)"
    )
    plan: PlanSettings = Field(default_factory=PlanSettings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
