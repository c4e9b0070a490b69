"""The feedback database: SQLAlchemy 2 Core tables; the schema itself comes from migrations."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

MIGRATIONS = Path(__file__).parent / "migrations"
metadata = MetaData()

# One row per feedback item; no patient data (card and suggestion uuids, codes, times).
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(64), nullable=False),
    Column("card_uuid", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("outcome_timestamp", String(40), nullable=False),
    Column("outcome_at", DateTime(timezone=True), nullable=False),
    Column("accepted_suggestions", Text, nullable=True),
    Column("override_system", String(255), nullable=True),
    Column("override_code", String(64), nullable=True),
    Column("has_comment", Boolean, nullable=False, default=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # decoded from the card uuid (see card_ids): feedback is read per recommendation
    Column("recommendation_key", String(64), nullable=True),
    UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_item"),
)


# Seen CDS Hooks JWT ids (iss|jti) until they expire: the replay cache when there is no Redis.
jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("jti_key", String(512), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


# Cards the service returned, counted per day (no patient data): "shown" for the analytics;
# mode "shadow" counts what shadow mode would have shown.
card_counts = Table(
    "card_counts",
    metadata,
    Column("day", Date, primary_key=True),
    Column("service_id", String(64), primary_key=True),
    Column("recommendation_key", String(64), primary_key=True),
    Column("mode", String(16), primary_key=True),
    Column("count", Integer, nullable=False),
)

# Shadow mode: one row per recommendation that would have been shown (and one "call" row per
# hook call), with the patient id as an HMAC under the site's secret: how often per patient,
# never who.
shadow_events = Table(
    "shadow_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("recommendation_key", String(64), nullable=False),
    Column("indicator", String(16), nullable=True),
    Column("patient_hash", String(64), nullable=False),
)


# Secrets of this installation (the card-id signing key), created once, shared by replicas.
service_secret = Table(
    "service_secret",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)


def installation_secret(engine: Engine, name: str = "card-ids") -> bytes:
    """The named secret of this database, created on first use (every replica gets the same)."""
    import secrets

    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(service_secret).on_conflict_do_nothing()
    with engine.begin() as connection:
        connection.execute(insert, {"name": name, "value": secrets.token_hex(32)})
        value = connection.execute(
            select(service_secret.c.value).where(service_secret.c.name == name)
        ).scalar_one()
    return bytes.fromhex(value)


def in_memory(url: str) -> bool:
    """Whether the URL names an in-memory SQLite database (nothing kept after a restart)."""
    return url.startswith("sqlite") and make_url(url).database in (None, "", ":memory:")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # An in-memory database lives in its connection, and SQLAlchemy's default pool for it
        # gives each thread a connection (a database) of its own: feedback, card counts and
        # reports, written and read in worker threads, met an empty one. One connection for
        # the process instead, used by one thread at a time.
        pool: dict[str, Any] = (
            {"poolclass": QueuePool, "pool_size": 1, "max_overflow": 0} if in_memory(url) else {}
        )
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, engine: Engine | None = None) -> None:
    """Bring the schema to the newest migration (idempotent).

    A SQLite file is migrated under an exclusive lock beside it: uvicorn's workers each run
    the lifespan, and two migrating a new file at once left one worker dead at start-up
    ("table ... already exists"). The second waits, then finds the schema current. An
    in-memory database exists only in its engine's connection: it is migrated through
    `engine`, the one the service then uses."""
    config = alembic_config(url)
    database = make_url(url).database if url.startswith("sqlite") else None
    if in_memory(url) and engine is not None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    elif not database or in_memory(url):
        command.upgrade(config, "head")
    else:
        with open(f"{database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                command.upgrade(config, "head")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def schema_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
