"""The service's one Settings object; every variable has the prefix OI_CDS_ (and .env works)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.plan_builder.settings import PlanSettings

CommaList = Annotated[list[str], NoDecode]


class TrustedIssuer(BaseModel):
    """A CDS client (EHR) we trust: its key set by URL, or shared out of band as a file."""

    model_config = ConfigDict(extra="forbid")

    jwks_url: str | None = None
    jwks_file: Path | None = None
    jku_allow: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> TrustedIssuer:
        if not self.jwks_url and not self.jwks_file and not self.jku_allow:
            raise ValueError("a trusted issuer needs jwks_url, jwks_file or jku_allow")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OI_CDS_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    demo: bool = Field(
        False,
        description="demo mode: auth off, any CORS origin, the local SQLite file (make run turns it on)",
    )
    database_url: str = Field(
        "sqlite:///oi-cds.sqlite3", description="SQLAlchemy URL of the feedback database"
    )
    fhir_allowlist: CommaList = Field(
        default_factory=list,
        description="FHIR servers the service may query "
        "(comma-separated base URLs; scheme, host, port, path prefix)",
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        description="browser origins allowed by CORS (comma-separated; any in demo mode)",
    )
    public_base_url: str | None = Field(
        None,
        description="the service's URL as EHRs see it: the JWT audience (behind a proxy request URLs differ)",
    )
    timezone: str = Field("UTC", description="time zone that turns the request time into the evaluation date")
    max_body_bytes: int = Field(5_000_000, gt=0, description="largest request body accepted (413 above)")
    max_bundle_entries: int = Field(
        10_000,
        gt=0,
        description="most entries in one prefetch Bundle, FHIR search or draftOrders (413 above)",
    )
    fhir_timeout_s: float = Field(5.0, gt=0, description="connect and read timeout for FHIR server calls")
    fhir_max_pages: int = Field(20, gt=0, description="most search pages fetched per query")
    fhir_max_response_bytes: int = Field(10_000_000, gt=0, description="largest FHIR response accepted")
    knowledge_dir: Path | None = Field(
        None, description="fhir_profiles directory (default: the packaged one)"
    )
    card_secret: SecretStr | None = Field(
        None,
        description="key that signs card ids (feedback cannot be forged); default: one made once and "
        "kept in the database, shared by replicas",
    )
    site_dir: Path | None = Field(
        None,
        description="site directory of FHIR ConceptMaps from local codes to the project's concepts "
        "(docs/site-mapping.md)",
    )
    auth_mode: Literal["off", "required"] | None = Field(
        None, description="CDS Hooks JWT checks: off | required (default: required, off in demo mode)"
    )
    trusted_issuers: dict[str, TrustedIssuer] = Field(
        default_factory=dict,
        description='JSON: {"<iss>": {"jwks_url": ..., "jku_allow": [...]}} or {"<iss>": {"jwks_file": ...}}',
    )
    jwt_leeway_s: int = Field(60, ge=0, description="clock-skew leeway for exp and iat, seconds")
    jwt_max_lifetime_s: int = Field(
        300, gt=0, description="longest token lifetime accepted (exp - iat), seconds"
    )
    jwks_cache_ttl_s: int = Field(3600, gt=0, description="how long a fetched JWKS is trusted, seconds")
    redis_url: str | None = Field(None, description="Redis for the JWT replay cache (else the database)")
    metrics_open: bool = Field(False, description="serve /metrics without a JWT (a private scrape network)")
    knowledge_open: bool = Field(
        False,
        description="serve the rule book (/knowledge, no patient data) without a JWT, for clinicians "
        "following a card's link",
    )
    max_concurrent_hooks: int = Field(
        32, gt=0, description="hook calls in progress per worker; beyond it 503 with Retry-After"
    )
    hook_deadline_s: float = Field(
        2.0, gt=0, description="a hook call answers within this (412 if the data is late)"
    )
    fhir_concurrency: int = Field(
        4, gt=0, description="FHIR queries one hook call's fallback runs at once (required keys first)"
    )
    fhir_max_in_flight: int = Field(
        32, gt=0, description="FHIR queries in flight from one worker, all hook calls together"
    )
    body_read_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a hook or feedback body must arrive within this (408 after); no slot is held meanwhile",
    )
    shed_loop_lag_s: float = Field(
        0.25, gt=0, description="hook calls are shed (503) while the event loop lags behind by more than this"
    )
    apply_spool_max_bytes: int = Field(
        1_000_000_000,
        gt=0,
        description="NDJSON $apply: most answer bytes waiting for a client that does not read (then stopped)",
    )
    max_concurrent_apply: int = Field(
        2, gt=0, description="$apply calls in progress per worker (run off the event loop); beyond it 503"
    )
    on_missing_data: Literal["412", "card"] = Field(
        "412",
        description="required data unobtainable: 412 (the spec's answer) or card (200 and one warning "
        "card saying which data; for EHRs that show a failed service as 'all clear')",
    )
    quiet_when_current: bool = Field(
        False,
        description="patient-view answers no cards when the OI care plan on file is current and no "
        "warning applies (a request's extension org.example.oi-cds.quiet overrides it)",
    )
    review_active_orders: bool = Field(
        True,
        description="patient-view also checks the patient's active MedicationRequests and "
        "ServiceRequests (warning-level order checks), for EHRs that fire only patient-view",
    )
    mode: Literal["live", "shadow"] = Field(
        "live",
        description="live, or shadow: evaluate every call, answer no cards (except to the pilot users) "
        "and record what would have been shown, for the go-live report at /admin/shadow",
    )
    shadow_pilot_users: CommaList = Field(
        default_factory=list,
        description="shadow mode: context.userId values (e.g. Practitioner/123) that do get the cards",
    )
    shadow_secret: SecretStr | None = Field(
        None,
        description="key of the HMAC that stands for the patient id in shadow records; default: one made "
        "once and kept in the database",
    )
    events_flush_s: float = Field(
        5.0, gt=0, description="cards-shown counts and shadow records are written to the database this often"
    )
    explain_issuers: CommaList = Field(
        default_factory=list,
        description="JWT issuers (iss) whose calls may ask for explain mode (?explain=true); "
        "always allowed in demo mode",
    )
    plan: PlanSettings = Field(default_factory=PlanSettings, description="the contract's site thresholds")

    @field_validator("fhir_allowlist", "cors_origins", "explain_issuers", "shadow_pilot_users", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("fhir_allowlist")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"not an absolute http(s) URL: {url!r}")
        return value

    def startup_problem(self) -> str | None:
        """A configuration the service must not start with, in words; None when it may."""
        if self.auth_required and not self.demo and not self.public_base_url:
            return (
                "auth is required but OI_CDS_PUBLIC_BASE_URL is not set: the JWT audience must come "
                "from configuration, never from the request's Host header"
            )
        return None

    def today(self) -> date:
        """The evaluation date: today in the configured time zone. The service's one clock for
        planning (hooks, $apply without evaluationDate, the CLI, the demo data's shift)."""
        return datetime.now(ZoneInfo(self.timezone)).date()

    @property
    def auth_required(self) -> bool:
        return (self.auth_mode or ("off" if self.demo else "required")) == "required"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
