"""The ``oi-cds`` command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ValidationError

from services.cds_hooks.config import Settings
from services.plan_builder.batch import Summary, plan_bundle
from services.plan_builder.errors import PlanError, PlanInputError, operation_outcome


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a number of workers (1 or more): {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):  # nan fails the comparison
        raise argparse.ArgumentTypeError(f"not a number of seconds (more than 0): {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oi-cds", description="OI clinical decision support")
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan",
        help="plan every patient of a FHIR R4 Bundle",
        description=(
            "Read a FHIR R4 Bundle (collection, searchset, transaction or batch) holding one or "
            "many patients and print a collection Bundle with one CarePlan per patient with OI, "
            "in input order; problems confined to one patient become an OperationOutcome entry."
        ),
    )
    plan.add_argument("file", nargs="?", help="the Bundle as a JSON file, or - for standard input")
    plan.add_argument("--ndjson-dir", type=Path, help="a FHIR Bulk Data export folder (Patient.ndjson, ...)")
    plan.add_argument(
        "--out", type=Path, help="with --ndjson-dir: folder for CarePlan.ndjson and OperationOutcome.ndjson"
    )
    plan.add_argument(
        "--engine",
        choices=("sqlite", "dask"),
        default="sqlite",
        help="with --ndjson-dir: one process joining through an on-disk SQLite index (default), "
        "or a Dask cluster (pip install 'oi-cds[dask]')",
    )
    plan.add_argument(
        "--scheduler",
        help="with --engine dask: the address of a running Dask scheduler (default: a local cluster)",
    )
    plan.add_argument(
        "--workers", type=int, help="with --engine dask and no --scheduler: local worker processes"
    )
    plan.add_argument("--at", type=_date, help="evaluation date (default: today in OI_CDS_TIMEZONE)")
    plan.add_argument("--strict", action="store_true", help="full FHIR R4 validation of every resource")
    plan.add_argument(
        "--include-non-oi",
        action="store_true",
        help="also write an information OperationOutcome for each patient without OI",
    )
    site = sub.add_parser(
        "check-site",
        help="check a site directory of ConceptMaps (OI_CDS_SITE_DIR) and say what it maps",
    )
    site.add_argument("dir", type=Path, help="the site directory")
    book = sub.add_parser(
        "rulebook",
        help="write the rule book (HTML and PDF) of the knowledge for a CDS committee",
        description="Generate the rule book from the knowledge artifacts, the site thresholds "
        "(OI_CDS_PLAN__*) and, in a source checkout, the example patients: rulebook.html and "
        "rulebook.pdf (headless Chromium) in --out.",
    )
    book.add_argument("--out", type=Path, required=True, help="folder for rulebook.html and rulebook.pdf")
    book.add_argument(
        "--knowledge",
        type=Path,
        help="fhir_profiles folder (default: OI_CDS_KNOWLEDGE_DIR or the packaged one)",
    )
    book.add_argument(
        "--previous", type=Path, help="the previous knowledge folder: list what changed artifact by artifact"
    )
    book.add_argument("--no-pdf", action="store_true", help="write the HTML only")
    impact = sub.add_parser(
        "impact",
        help="run two knowledge versions over a cohort and list per rule whose plans change",
        description="Plan every patient of an NDJSON folder with --from and with --to and print, per "
        "recommendation, how many patients gain or lose it (JSON; patient references only with --ids).",
    )
    impact.add_argument("--from", dest="old", type=Path, required=True, help="the knowledge folder in force")
    impact.add_argument("--to", dest="new", type=Path, required=True, help="the knowledge folder to release")
    impact.add_argument(
        "--ndjson-dir", type=Path, required=True, help="the cohort (a Bulk Data export folder)"
    )
    impact.add_argument("--at", type=_date, help="evaluation date (default: today in OI_CDS_TIMEZONE)")
    impact.add_argument("--ids", action="store_true", help="also list the patient references per rule")
    export = sub.add_parser(
        "export",
        help="pull a FHIR Bulk Data export ($export) into a folder oi-cds plan --ndjson-dir reads",
        description="Kick off $export (system, Group or Patient level) for what the knowledge reads, "
        "poll its status, download the files in parallel (resumable: run again with the same --out) and "
        "keep the server's error files in errors/. URLs the server returns (status, files, token "
        "endpoint) are contacted only under --fhir-server, OI_CDS_FHIR_ALLOWLIST or --allow.",
    )
    export.add_argument("--fhir-server", required=True, help="the FHIR base URL")
    level = export.add_mutually_exclusive_group()
    level.add_argument("--group", help="Group-level export of this Group id")
    level.add_argument("--patients", action="store_true", help="Patient-level export (all patients)")
    export.add_argument("--out", type=Path, required=True, help="folder for the NDJSON files")
    export.add_argument("--since", help="_since: only resources changed after this FHIR instant")
    export.add_argument(
        "--type", dest="types", help="comma-separated _type (default: what the knowledge reads)"
    )
    export.add_argument(
        "--type-filter",
        action="append",
        default=None,
        help="a _typeFilter query (repeatable; default: the knowledge's, as the hooks' prefetch)",
    )
    export.add_argument("--no-type-filter", action="store_true", help="send no _typeFilter")
    export.add_argument("--client-id", help="SMART Backend Services client id (with --key)")
    export.add_argument("--key", type=Path, help="the client's private key: a JWK or JWKS file (RS384/ES384)")
    export.add_argument("--scope", default="system/*.read", help="scopes to ask the token endpoint for")
    export.add_argument("--allow", action="append", default=[], help="another base URL files may come from")
    export.add_argument("--parallel", type=int, default=4, help="downloads at a time")
    export.add_argument("--max-wait", type=float, default=3600.0, help="seconds to wait for the export")
    serve = sub.add_parser("serve", help="run the CDS Hooks service (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=_workers, default=1, help="worker processes, each with its own socket"
    )
    serve.add_argument(
        "--worker-timeout",
        type=_seconds,
        default=30.0,  # workers.WORKER_TIMEOUT_S: that module imports uvicorn, which `plan` need not
        help="with several workers: seconds a worker's event loop may stay still before the worker "
        "is killed and replaced (default 30)",
    )
    sub.add_parser("migrate", help="bring the feedback database (OI_CDS_DATABASE_URL) to the newest schema")
    sub.add_parser("settings-table", help="print the settings as a Markdown table (the README's)")
    keys = sub.add_parser("dev-keys", help="write a local signing key and its JWKS (a development issuer)")
    keys.add_argument("--dir", type=Path, default=DEV_KEYS)
    keys.add_argument("--alg", choices=("ES384", "RS384"), default="ES384")
    token = sub.add_parser("dev-token", help="mint a CDS Hooks JWT with the dev-keys key")
    token.add_argument("--aud", required=True, help="the exact URL the token is for")
    token.add_argument("--dir", type=Path, default=DEV_KEYS)
    token.add_argument("--iss", default=DEV_ISSUER)
    token.add_argument("--lifetime", type=int, default=300, help="seconds")
    return parser


def _fail(message: str, err: IO[str], code: str = "invalid") -> int:
    outcome = operation_outcome([{"severity": "fatal", "code": code, "diagnostics": message}])
    err.write(json.dumps(outcome, indent=2) + "\n")
    return 2


def _plan_failure(exc: PlanError, err: IO[str], context: str) -> int:
    """The plan builder's errors on the command line, in one place: an OperationOutcome on
    stderr (with the message code of an input error) and exit status 2."""
    if isinstance(exc, PlanInputError):
        issue = {**exc.to_issue(), "severity": "fatal"}
    else:
        issue = {"severity": "fatal", "code": "invalid", "diagnostics": f"{context}: {exc}"}
    err.write(json.dumps(operation_outcome([issue]), indent=2) + "\n")
    return 2


def run_plan(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from services.plan_builder import Planner, load_knowledge

    settings = _settings_or_fail(err)
    if settings is None:
        return 2
    at = args.at or settings.today()
    if args.ndjson_dir is not None:
        return _run_bulk(args, settings, at, err)
    if args.file is None:
        return _fail("give a Bundle file (or -) or --ndjson-dir with --out", err, "required")
    try:
        if args.file == "-":
            doc = json.load(sys.stdin)
        else:
            with open(args.file, encoding="utf-8") as fh:
                doc = json.load(fh)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}", err, "not-found")
    except (ValueError, UnicodeDecodeError) as exc:
        return _fail(f"{args.file} is not JSON: {exc}", err, "structure")

    planner = Planner(load_knowledge(settings.knowledge_dir, site_dir=settings.site_dir), settings.plan)
    summary = Summary()
    try:
        outcomes = plan_bundle(doc, planner, at, strict=args.strict)
    except PlanInputError as exc:
        return _plan_failure(exc, err, "the input cannot be planned")
    # Output is written as it is produced: CarePlans are never all held in memory.
    out.write('{"resourceType": "Bundle", "type": "collection", "entry": [')
    written = 0
    for outcome in outcomes:
        summary.add(outcome)
        if outcome.kind == "not-oi" and not args.include_non_oi:
            continue
        out.write(("," if written else "") + "\n" + json.dumps({"resource": outcome.resource}))
        written += 1
    out.write("\n]}\n")
    out.flush()
    err.write(summary.line() + "\n")
    return 0


def _run_bulk(args: argparse.Namespace, settings: Settings, at: date, err: IO[str]) -> int:
    from services.gaps import write_report
    from services.plan_builder import Planner, load_knowledge

    if args.out is None:
        return _fail("--ndjson-dir needs --out", err, "required")
    if not args.ndjson_dir.is_dir() or not any(args.ndjson_dir.glob("*.ndjson")):
        return _fail(f"{args.ndjson_dir} is not a folder of .ndjson files", err, "not-found")
    if args.out.resolve() == args.ndjson_dir.resolve():
        return _fail("--out must not be the --ndjson-dir folder (the results would be read as input)", err)
    if args.engine == "dask":
        try:
            from services.bulk_dask import KnowledgeArgs, plan_folder_dask
        except ImportError as exc:
            return _fail(
                f"--engine dask needs the dask extra (pip install 'oi-cds[dask]'): {exc}",
                err,
                "not-supported",
            )
        kargs = KnowledgeArgs(
            str(settings.knowledge_dir) if settings.knowledge_dir else None,
            str(settings.site_dir) if settings.site_dir else None,
            settings.plan.model_dump_json(),
        )
        try:
            result = plan_folder_dask(
                args.ndjson_dir,
                args.out,
                kargs,
                at,
                scheduler=args.scheduler,
                workers=args.workers,
                progress=err,
            )
        except OSError as exc:
            return _fail(f"the Dask run failed: {exc}", err, "exception")
    else:
        from services.bulk import plan_folder

        result = plan_folder(
            args.ndjson_dir,
            args.out,
            Planner(load_knowledge(settings.knowledge_dir, site_dir=settings.site_dir), settings.plan),
            at,
            progress=err,
        )
    write_report(result.summary, args.out, at, args.engine)
    err.write(result.summary.line() + "\n")
    return 0


def _settings_or_fail(err: IO[str]) -> Settings | None:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid OI_CDS_ settings: {problems}", err, "invalid")
        return None


def run_serve(args: argparse.Namespace, err: IO[str]) -> int:
    settings = _settings_or_fail(err)
    if settings is None:
        return 2
    problem = settings.startup_problem()
    if problem is not None:
        return _fail(problem, err, "invalid")
    from services.cds_hooks.db import in_memory

    if (
        settings.auth_required
        and args.workers > 1
        and not settings.redis_url
        and in_memory(settings.database_url)
    ):
        # each worker would keep its own replay cache: a token could be replayed to another
        return _fail(
            "auth is required with several workers but the JWT replay cache is not shared: "
            "set OI_CDS_REDIS_URL or a file/server OI_CDS_DATABASE_URL",
            err,
            "invalid",
        )
    from services.cds_hooks.logs import configure
    from services.plan_builder import load_knowledge
    from services.plan_builder.errors import KnowledgeError

    try:
        # checked here so that a broken artifact or site map is one clear line, not a traceback
        load_knowledge(settings.knowledge_dir, site_dir=settings.site_dir)
    except KnowledgeError as exc:
        return _plan_failure(exc, err, "the service cannot start on this knowledge or site directory")
    from services.cds_hooks.workers import serve

    return serve(
        "services.cds_hooks.main:create_app",
        factory=True,
        log_config=configure(),
        access_log=False,
        host=args.host,
        port=args.port,
        workers=args.workers,
        worker_timeout=args.worker_timeout,
        log_level="info",
    )


def run_migrate(err: IO[str]) -> int:
    from services.cds_hooks.db import migrate

    settings = _settings_or_fail(err)
    if settings is None:
        return 2
    migrate(settings.database_url)
    err.write("database schema is at the newest migration\n")
    return 0


def settings_table() -> str:
    """Markdown table of every setting, from the Settings class itself (so it cannot drift)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]

    def add(prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            if isinstance(field.default_factory, type) and issubclass(field.default_factory, BaseModel):
                add(f"{prefix}{name.upper()}__", field.default_factory)
                continue
            default = field.get_default(call_default_factory=True)
            shown = ", ".join(default) if isinstance(default, list) else default
            text = (
                "(none)"
                if shown in (None, "", [])
                else f"`{str(shown).lower() if isinstance(shown, bool) else shown}`"
            )
            rows.append(f"| `{prefix}{name.upper()}` | {text} | {field.description or ''} |")

    add("OI_CDS_", Settings)
    return "\n".join(rows)


def run_check_site(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Exit 0 and a report for a usable site directory; 2 and the reason for a broken one."""
    from services.plan_builder import load_knowledge
    from services.plan_builder.errors import KnowledgeError
    from services.plan_builder.site import describe, unavailable

    try:
        knowledge = load_knowledge(site_dir=args.dir)
    except KnowledgeError as exc:
        return _plan_failure(exc, err, "site directory not usable")
    site, term = knowledge.site, knowledge.terminology
    value_sets = {str(v["id"]): str(v.get("title", v["id"])) for v in knowledge.by_type("ValueSet")}
    out.write(f"{args.dir}: {len(site.maps)} ConceptMap(s), {len(site.translations)} local code(s) mapped\n")
    out.write("Maps:\n")
    for line in describe(site, term, value_sets):
        out.write(line + "\n")
    gaps = unavailable(site, term, knowledge.vocabulary.observation_facts)
    if gaps:
        out.write("Unobtainable for this site (recommendations that need them are withheld):\n")
        for label, why in gaps:
            out.write(f"  {label}: {why}\n")
    else:
        out.write("Every fact the rules read from Observations can be had at this site.\n")
    return 0


DEV_KEYS = Path(".oi-cds-dev-keys")
DEV_ISSUER = "https://oi-cds.dev.local/issuer"


def run_dev_keys(args: argparse.Namespace, out: IO[str]) -> int:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    args.dir.mkdir(parents=True, exist_ok=True)
    private = (
        ec.generate_private_key(ec.SECP384R1())
        if args.alg == "ES384"
        else rsa.generate_private_key(65537, 3072)
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path = args.dir / "private.pem"
    key_path.write_bytes(pem)
    key_path.chmod(0o600)
    algorithm = jwt.algorithms.get_default_algorithms()[args.alg]
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    jwk.update(kid=uuid.uuid4().hex, alg=args.alg, use="sig")
    (args.dir / "jwks.json").write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    (args.dir / "meta.json").write_text(json.dumps({"alg": args.alg, "kid": jwk["kid"]}) + "\n")
    trusted = {DEV_ISSUER: {"jwks_file": str((args.dir / "jwks.json").resolve())}}
    out.write(f"wrote {key_path} and {args.dir / 'jwks.json'}\n")
    out.write(f"trust it with: OI_CDS_TRUSTED_ISSUERS='{json.dumps(trusted)}'\n")
    return 0


def mint_dev_token(directory: Path, aud: str, iss: str = DEV_ISSUER, lifetime: int = 300) -> str:
    """A CDS Hooks JWT signed with the dev-keys key in `directory` (OSError when there is none)."""
    import jwt

    meta = json.loads((directory / "meta.json").read_text())
    key = (directory / "private.pem").read_bytes()
    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
    headers = {"kid": meta["kid"], "typ": "JWT"}
    return jwt.encode(claims, key, algorithm=meta["alg"], headers=headers)


def run_dev_token(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    try:
        token = mint_dev_token(args.dir, args.aud, args.iss, args.lifetime)
    except OSError:
        err.write(f"no dev keys in {args.dir}: run `oi-cds dev-keys` first\n")
        return 2
    out.write(token + "\n")
    return 0


def run_export(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    import asyncio

    import httpx

    from services.bulk_export import (
        ClientKey,
        Exporter,
        ExportError,
        ExportRequest,
        Tokens,
        knowledge_request,
        server_types,
        token_endpoint,
    )
    from services.cds_hooks.fhir_client import normalize_url
    from services.plan_builder import load_knowledge

    settings = _settings_or_fail(err)
    if settings is None:
        return 2
    if (args.client_id is None) != (args.key is None):
        return _fail("--client-id and --key go together (SMART Backend Services)", err, "required")
    try:
        server = normalize_url(args.fhir_server).rstrip("/")
    except ValueError as exc:
        return _fail(f"--fhir-server is not a plain http(s) URL: {exc}", err)

    async def run() -> int:
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0)) as http:
            exporter = Exporter(
                http,
                [server, *settings.fhir_allowlist, *args.allow],
                args.out,
                parallel=max(1, args.parallel),
                max_wait=args.max_wait,
                progress=err,
            )
            if args.client_id:
                key = ClientKey.from_file(args.client_id, args.key, args.scope)
                exporter.tokens = Tokens(key, await token_endpoint(exporter, server))
            level = {"group": args.group, "patient_level": args.patients, "since": args.since}
            if args.types:
                request = ExportRequest(server, types=tuple(t for t in args.types.split(",") if t), **level)
            else:
                knowledge = load_knowledge(settings.knowledge_dir, site_dir=settings.site_dir)
                request = knowledge_request(knowledge, server, await server_types(exporter, server), **level)
            if args.no_type_filter:
                request = ExportRequest(**{**request.__dict__, "type_filters": ()})
            elif args.type_filter is not None:
                request = ExportRequest(**{**request.__dict__, "type_filters": tuple(args.type_filter)})
            result = await exporter.run(request)
            for note in result.notes:
                err.write(note + "\n")
            err.write(result.line() + "\n")
            out.write(
                json.dumps(
                    {
                        "out": str(args.out),
                        "resources": result.resources(),
                        "errors": result.error_issues,
                        "transactionTime": result.transaction_time,
                    }
                )
                + "\n"
            )
            return 0

    try:
        return asyncio.run(run())
    except ExportError as exc:
        return _fail(str(exc), err, exc.code)


def run_impact(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from services.bulk import impact_folder
    from services.plan_builder import Planner, load_knowledge
    from services.plan_builder.errors import KnowledgeError

    settings = _settings_or_fail(err)
    if settings is None:
        return 2
    if not args.ndjson_dir.is_dir() or not any(args.ndjson_dir.glob("*.ndjson")):
        return _fail(f"{args.ndjson_dir} is not a folder of .ndjson files", err, "not-found")
    try:
        before, after = (
            Planner(load_knowledge(folder, site_dir=settings.site_dir), settings.plan)
            for folder in (args.old, args.new)
        )
    except KnowledgeError as exc:
        return _fail(f"a knowledge folder cannot be loaded: {exc}", err, "invalid")
    report = impact_folder(args.ndjson_dir, before, after, args.at or settings.today(), with_ids=args.ids)
    out.write(json.dumps(report, indent=2) + "\n")
    return 0


def run_rulebook(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from services import rulebook
    from services.plan_builder import load_knowledge
    from services.plan_builder.errors import KnowledgeError
    from services.rulebook.pdf import browser, print_pdf

    settings = _settings_or_fail(err)
    if settings is None:
        return 2
    executable = None if args.no_pdf else browser()
    if not args.no_pdf and executable is None:
        return _fail(
            "no Chromium to print the PDF with: install chromium, or pass --no-pdf", err, "not-supported"
        )
    try:
        knowledge = load_knowledge(args.knowledge or settings.knowledge_dir, site_dir=settings.site_dir)
        book = rulebook.build(knowledge, settings.plan, rulebook.Sources(previous=args.previous))
    except KnowledgeError as exc:
        return _fail(f"the rule book cannot be built: {exc}", err, "invalid")
    args.out.mkdir(parents=True, exist_ok=True)
    html = args.out / "rulebook.html"
    html.write_text(rulebook.render_html(book, settings.today().isoformat()), encoding="utf-8")
    out.write(f"wrote {html}\n")
    if executable is not None:
        try:
            print_pdf(html, args.out / "rulebook.pdf", executable)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return _fail(f"the PDF was not written: {exc}", err, "exception")
        out.write(f"wrote {args.out / 'rulebook.pdf'}\n")
    failing = [x.id for x in book.examples or () if not x.passed]
    if failing:
        err.write(f"example patients failing now: {', '.join(failing)} (shown in the book)\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        return run_plan(args, sys.stdout, sys.stderr)
    if args.command == "serve":
        return run_serve(args, sys.stderr)
    if args.command == "migrate":
        return run_migrate(sys.stderr)
    if args.command == "dev-keys":
        return run_dev_keys(args, sys.stdout)
    if args.command == "dev-token":
        return run_dev_token(args, sys.stdout, sys.stderr)
    if args.command == "check-site":
        return run_check_site(args, sys.stdout, sys.stderr)
    if args.command == "export":
        return run_export(args, sys.stdout, sys.stderr)
    if args.command == "impact":
        return run_impact(args, sys.stdout, sys.stderr)
    if args.command == "rulebook":
        return run_rulebook(args, sys.stdout, sys.stderr)
    if args.command == "settings-table":
        print(settings_table())
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
