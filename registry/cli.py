"""The ``mlledger`` command line.

Every command takes ``--db`` (default ``MLLEDGER_DB`` or ``./.mlledger/ledger.db``)
and ``--project`` (for ``keys`` and ``access-trail``, a filter or the key's project,
never a default); commands that print data take ``--json``. Errors print one
line naming what was wrong and exit with status 2 (bad input, unknown node),
1 (the database, or the Neo4j lineage graph, could not be used) or 3 (``audit``: the
log, a checkpoint or a proof is not as signed); never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from executors import cli as jobs_cli
from executors import serving_cli
from registry.commands import (
    PROJECT_HELP,
    add_command,
    add_db,
    add_json,
    open_registry,
    signing_key,
    whole_number,
)
from registry.commands import audit as audit_cli
from registry.commands import compliance as compliance_cli
from registry.commands import graph as graph_cli
from registry.errors import (
    FieldError,
    GraphUnavailable,
    IntegrityViolation,
    InvalidInput,
    LedgerError,
    NotFound,
)
from registry.ids import kind_of, label_of
from registry.lazy import lazy_import
from registry.roles import ROLES
from registry.wording import counted, noun

if TYPE_CHECKING:
    from lineage import answers
    from registry.sdk import Registry
    from registry.settings import Settings
    from registry.store import Store
else:
    answers = lazy_import("lineage.answers")  # pydantic loads to render an answer, not for --help

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1
AnswerT = TypeVar("AnswerT", bound="answers.Shape")


def _common(parser: argparse.ArgumentParser, *, project_help: str = PROJECT_HELP) -> None:
    """``--db``, ``--project`` and ``--json``."""
    add_db(parser)
    parser.add_argument("--project", help=project_help)
    add_json(parser)


#: The question commands: name, help, description, and the positional argument with its
#: help. ``lineage`` adds its options (``_lineage_options``).
QUESTION_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "scored": (
        "which model version, in which deployment, scored a record",
        "Every time a record was scored: when, by which model version, in which "
        "deployment, and the output. The record is named by its pseudonym; an erased "
        "record answers with its erasure.",
        "record",
        "the record key, as your data knows it",
    ),
    "trained-on": (
        "dataset versions that trained a model version",
        "The dataset versions a model version was trained on, transitively "
        "(through derivations, the runs that produced them and base models), each with its "
        "depth (1: read by the model's own training run; docs/concepts.md), record count "
        "and digest.",
        "model",
        "NAME@VERSION, NAME@ALIAS, NAME@latest, model:PROJECT/NAME@VERSION or "
        "dataset:PROJECT:model/NAME",
    ),
    "downstream": (
        "everything downstream of a dataset version",
        "The runs, derived dataset versions, model versions and deployments "
        "downstream of a dataset version, and the predictions those model versions made.",
        "dataset",
        "NAME@VERSION, NAME@latest, dataset:PROJECT/NAME@VERSION or an OpenLineage "
        "dataset:NAMESPACE:NAME (its newest version)",
    ),
    "lineage": (
        "the lineage subgraph around a node, optionally as of a time",
        "The nodes and edges of the lineage graph around a dataset version, "
        "run, model version or deployment, to --depth hops, optionally as the graph stood "
        "at a past time. Records and data subjects are not nodes of the graph: their id "
        "answers only whether they were erased (ask `scored` or `footprint` instead).",
        "node",
        "a dataset, run, model or deployment id: dataset:PROJECT/NAME@VERSION, "
        "run:UUID, model:PROJECT/NAME@VERSION or deployment:PROJECT/NAME (a version may "
        "be @latest); or an OpenLineage id: dataset:NAMESPACE:NAME (its newest version) "
        "or job:NAMESPACE:NAME (its newest run)",
    ),
    "footprint": (
        "everything linked to a data subject",
        "A data subject's records, the dataset versions holding them, what was "
        "derived from those (dataset versions, runs, model versions, deployments), every "
        "prediction about their records and their vault entries. The subject is named by "
        "their erasure reference, as erasures and certificates name them.",
        "subject",
        "the data subject's id, as your data knows it",
    ),
    "history": (
        "which model versions a deployment served, when",
        "Every configuration of a deployment: which model version it served, "
        "with what share of the traffic, from when to when.",
        "deployment",
        "NAME, deployment:PROJECT/NAME or job:PROJECT:deployment/NAME",
    ),
    "aliases": (
        "where each alias of a model pointed, when, moved by whom",
        "Each alias (stage) of a model, such as production or staging: the "
        "versions it pointed at, from when to when, and who moved it.",
        "model",
        "the model's name, or its OpenLineage id dataset:PROJECT:model/NAME",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``mlledger`` argument parser: every command, in the order ``--help`` lists them."""
    parser = argparse.ArgumentParser(
        prog="mlledger", description="Metadata, lineage and audit registry for machine learning."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _setup_parsers(sub)
    _question_parsers(sub, ("scored", "trained-on", "downstream", "lineage", "footprint"))
    _erase_parser(sub)
    _question_parsers(sub, ("history", "aliases"))
    _log_parsers(sub)
    _keys_parser(sub)
    _grants_parser(sub)
    _serving_parsers(sub)
    audit_cli.add_parser(sub)
    compliance_cli.add_parsers(sub)
    jobs_cli.add_parser(sub)
    serving_cli.add_parser(sub)
    graph_cli.add_parser(sub)
    return parser


def _setup_parsers(sub: Any) -> None:
    """``demo`` and ``init``."""
    p = add_command(sub, "demo", cmd_demo)
    _common(p, project_help="the project to record the scenario in (default: demo)")
    p.add_argument(
        "--predictions", type=int, default=3000, help="predictions to log (default 3000)"
    )
    p = add_command(sub, "init", cmd_init)
    add_db(p)
    add_json(p)


def _question_parsers(sub: Any, names: Sequence[str]) -> None:
    """The question commands ``names``, as ``QUESTION_COMMANDS`` describes them."""
    for name in names:
        summary, description, argument, argument_help = QUESTION_COMMANDS[name]
        p = sub.add_parser(name, help=summary, description=description)
        _common(p)
        p.add_argument(argument, help=argument_help)
        if name == "lineage":
            _lineage_options(p)


def _lineage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--direction",
        choices=("upstream", "downstream", "both"),
        default="both",
        help="follow edges towards the data (upstream), towards what was made from it "
        "(downstream), or both (default)",
    )
    p.add_argument("--depth", type=int, default=3, help="hops from the node (default 3)")
    p.add_argument(
        "--as-of",
        dest="as_of",
        help="an RFC 3339 time, e.g. 2026-01-31T12:00:00Z: the graph as it stood then",
    )


def _erase_parser(sub: Any) -> None:
    p = add_command(sub, "erase", cmd_erase)
    _common(p)
    p.add_argument("subject", nargs="?", help="the data subject's id, as your data knows it")
    p.add_argument(
        "--from-file",
        dest="from_file",
        help="erase every subject id in FILE (one per line; '#' comments); re-run it to resume",
    )
    p.add_argument("--resume", action="store_true", help="complete interrupted erasures")
    p.add_argument(
        "--purge",
        dest="purge_only",
        action="store_true",
        help="purge now, physically, what earlier erasures run with --no-purge deleted, "
        "and sign a checkpoint",
    )
    p.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="show the plan; change nothing"
    )
    p.add_argument(
        "--retain",
        action="append",
        default=[],
        metavar="MODEL",
        help="keep this affected model version in service (NAME@VERSION, NAME@ALIAS, "
        "NAME@latest, model:PROJECT/NAME@VERSION, dataset:NAMESPACE:model/NAME, or 'all'); "
        "needs --justification and --approver",
    )
    p.add_argument("--justification", help="why the retained model versions are kept")
    p.add_argument("--approver", help="who approved keeping them")
    p.add_argument(
        "--certificate",
        metavar="PATH",
        help="write the signed certificate to "
        "PATH (with --from-file: a directory, one file per erasure)",
    )
    p.add_argument(
        "--no-purge",
        dest="no_purge",
        action="store_true",
        help="skip the physical purge (run `mlledger erase --purge` later); the "
        "certificate then records no purge",
    )


def _log_parsers(sub: Any) -> None:
    """``rebuild`` and ``log``."""
    p = add_command(sub, "rebuild", cmd_rebuild)
    _common(p)
    p = add_command(sub, "log", cmd_log)
    _access_options(p, project_help="only this project's events (default: every project)")
    p.add_argument("--start", type=whole_number, default=0, help="first position (default 0)")
    p.add_argument("--limit", type=whole_number, default=20, help="how many (default 20)")


def _serving_parsers(sub: Any) -> None:
    """``access-trail``, ``serve`` and ``openapi``."""
    p = add_command(sub, "access-trail", cmd_access_trail)
    _access_options(p, project_help="only this project's entries (default: every project)")
    p.add_argument(
        "--since", type=whole_number, default=0, help="first sequence number (default 0)"
    )
    p.add_argument("--limit", type=whole_number, default=100, help="how many (default 100)")
    p = add_command(sub, "serve", cmd_serve)
    add_db(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="worker processes (default: one per core)",
    )
    p.add_argument(
        "--access-log", action="store_true", help="also print uvicorn's per-request log lines"
    )
    add_command(sub, "openapi", cmd_openapi)


def _port(text: str) -> int:
    value = whole_number(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a port: expected 1-65535")
    return value


def _positive(text: str) -> int:
    value = whole_number(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0: expected 1 or more")
    return value


def _access_options(parser: argparse.ArgumentParser, *, project_help: str | None) -> None:
    """``--db``, ``--json`` and (with help text) ``--project``, which here never defaults
    to ``MLLEDGER_PROJECT``: a key or a filter names its project on purpose."""
    add_db(parser)
    if project_help is not None:
        parser.add_argument("--project", help=project_help)
    add_json(parser)


def _keys_parser(sub: Any) -> None:
    keys = add_command(sub, "keys", cmd_keys)
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    p = actions.add_parser(
        "create",
        help="create an API key; its token is shown once",
        description="Create an API key for a project and a role; its token is printed once "
        "and only its hash is kept.",
    )
    _access_options(p, project_help=None)
    p.add_argument("--project", required=True, help="the project the key is for")
    p.add_argument("--role", required=True, help=f"one of {', '.join(ROLES)}")
    p.add_argument("--name", help="a label for the key (e.g. the service using it)")

    p = actions.add_parser(
        "list",
        help="list API keys (never their secrets)",
        description="The API keys, with project, role, state and who created them; never "
        "their secrets.",
    )
    _access_options(p, project_help="only this project's keys (default: every project)")

    p = actions.add_parser(
        "revoke",
        help="revoke an API key, from now on",
        description="Revoke an API key: requests with it are refused from now on.",
    )
    _access_options(p, project_help="refuse unless the key is for this project")
    p.add_argument("key_id", help="the key's id, as 'keys list' shows it")


def _grants_parser(sub: Any) -> None:
    grants = add_command(sub, "grants", cmd_grants)
    actions = grants.add_subparsers(dest="grants_command", required=True, metavar="ACTION")
    for action, summary, description, granting, grantee in (
        (
            "add",
            "grant GRANTEE access to --project's versions",
            "Let project GRANTEE use and read --project's dataset and model "
            "versions (an event of --project's log).",
            "the project granting access",
            "the project granted access",
        ),
        (
            "revoke",
            "end the access --project granted GRANTEE",
            "End the access --project granted GRANTEE (an event of --project's "
            "log); what GRANTEE recorded before stays.",
            "the project that granted access",
            "the project whose access ends",
        ),
    ):
        p = actions.add_parser(action, help=summary, description=description)
        _access_options(p, project_help=None)
        p.add_argument("--project", required=True, help=granting)
        p.add_argument("grantee", help=grantee)
        p.add_argument("--reason", help="why, in a few words (kept in the log)")
    p = actions.add_parser(
        "list",
        help="grants --project made and received",
        description="The grants --project made and received, in force or revoked.",
    )
    _access_options(p, project_help=None)
    p.add_argument("--project", required=True, help="the project")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlledger`` console script."""
    args = build_parser().parse_args(argv)  # --help ends here, before SQLAlchemy loads
    from sqlalchemy.exc import SQLAlchemyError

    from registry.settings import Settings

    # "keys create", not just "keys", in error lines.
    subcommand = (
        getattr(args, "keys_command", None)
        or getattr(args, "grants_command", None)
        or getattr(args, "audit_command", None)
        or getattr(args, "report_command", None)
        or getattr(args, "jobs_command", None)
        or getattr(args, "serve_model_command", None)
    )
    name = " ".join(filter(None, (args.command, subcommand)))
    try:
        from registry import tracing

        tracing.configure()  # OTEL_* variables trace CLI commands too
        # The MLLEDGER_* settings, read once here: every command takes them from args.
        args.settings = Settings()
        return COMMANDS[args.command](args)
    except IntegrityViolation as exc:
        print(f"mlledger {name}: integrity: {exc}", file=sys.stderr)
        return audit_cli.EXIT_INVALID
    except GraphUnavailable as exc:
        print(f"mlledger {name}: unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except LedgerError as exc:
        print(f"mlledger {name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into head and the like
        sys.stderr.close()
        return 0
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"mlledger {name}: cannot use the database: {reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:  # a database or key file that cannot be created or read
        print(f"mlledger {name}: cannot use the database: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _emit(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> int:
    """Print ``data`` as ``--json`` asks (a typed answer: its JSON form), else as ``text``."""
    if args.json:
        shown = data.model_dump(mode="json") if isinstance(data, answers.Shape) else data
        print(json.dumps(shown, indent=2, sort_keys=True))
    else:
        print(text(data))
    return 0


def _question(
    name: str, kind: str, render: Callable[[Any], str]
) -> Callable[[argparse.Namespace], int]:
    """The command asking the SDK question ``name``, rendering its typed answer (the
    class ``kind`` of ``lineage.answers``)."""
    argument = QUESTION_COMMANDS[name.replace("_", "-")][2]

    def command(args: argparse.Namespace) -> int:
        with open_registry(args) as reg:
            asked = getattr(reg, name)(getattr(args, argument))
        answer = getattr(answers, kind).model_validate(asked)
        return _emit(args, answer, render)

    return command


def cmd_lineage(args: argparse.Namespace) -> int:
    with open_registry(args) as reg:
        data = reg.lineage(args.node, direction=args.direction, depth=args.depth, as_of=args.as_of)
    return _emit(args, answers.LineageAnswer.model_validate(data), render_lineage)


def cmd_rebuild(args: argparse.Namespace) -> int:
    """drop every projection and replay the log

    Empty every projection (catalogue, indexes, lineage graph) and replay the whole log into
    them; print the number of events replayed and the digest of the projections, equal to
    the digest before when nothing was amiss."""
    import time

    with open_registry(args) as reg:
        started = time.perf_counter()
        result = reg.ledger.rebuild()
        result["seconds"] = round(time.perf_counter() - started, 3)
        return _emit(
            args,
            result,
            lambda r: (
                f"replayed {counted(r['events'], 'event')} in {r['seconds']} s; "
                f"projection digest {r['digest']}"
            ),
        )


def cmd_log(args: argparse.Namespace) -> int:
    """print events from the log

    Events of the log in position order, from --start, at most --limit of them; with
    --project, that project's events only."""
    with open_registry(args) as reg:
        events = [e.as_dict() for e in _log_page(reg.ledger, args.start, args.limit, args.project)]
        return _emit(args, events, render_log)


def _log_page(ledger: Any, start: int, limit: int, project: str | None) -> list[Any]:
    """At most ``limit`` events from position ``start`` on, of ``project`` only when given."""
    if project is None:
        return list(ledger.read(start, limit))
    found: list[Any] = []
    head = ledger.head()
    while len(found) < limit and start <= head:
        chunk = ledger.read(start, 2000)
        if not chunk:
            break
        start = chunk[-1].position + 1
        found += [e for e in chunk if e.project == project]
    return found[:limit]


def _store(args: argparse.Namespace, *, create: bool = False) -> AbstractContextManager[Store]:
    """The store alone: keys and the trail need neither the vault nor the master key."""
    from registry.settings import normalise_url
    from registry.store import opened

    return opened(normalise_url(args.db, args.settings), create=create)


def _retain(args: argparse.Namespace) -> list[dict[str, str]]:
    if not args.retain:
        if args.justification or args.approver:
            raise FieldError("--retain", "--justification and --approver go with --retain MODEL")
        return []
    if not args.justification or not args.approver:
        raise FieldError(
            "--justification" if not args.justification else "--approver",
            "--retain needs --justification (why) and --approver (who approved keeping it)",
        )
    # Resolved where the erasure runs (registry.services.retained), on a server too.
    models = ["*" if m in ("all", "*") else m for m in args.retain]
    return [
        {"model": m, "justification": args.justification, "approver": args.approver} for m in models
    ]


def _write_certificate(reg: Registry, erasure: str, path: str, purge: dict[str, Any] | None) -> str:
    """Write the erasure's certificate, recording ``purge``: the report of the purge this
    command ran after it (None when it ran none)."""
    from pathlib import Path

    from audit.erasure import certify

    envelope = certify(reg.ledger, reg.project, erasure, purge=purge)
    target = Path(path)
    if target.is_dir():
        target = target / f"{erasure}.json"
    target.write_text(json.dumps(envelope, indent=2, sort_keys=True) + "\n")
    return str(target)


def cmd_erase(args: argparse.Namespace) -> int:
    """erase a data subject everywhere (GDPR Art. 17), with a signed certificate

    Erase a data subject: plan the cascade through lineage, delete their vault entries and
    key, redact their records and predictions, flag affected model versions, purge
    physically and certify (docs/gdpr.md)."""
    chosen = [x for x in (args.subject, args.from_file, args.resume, args.purge_only) if x]
    if len(chosen) != 1:
        raise InvalidInput("give one of: SUBJECT, --from-file FILE, --resume or --purge")
    if args.purge_only and (args.no_purge or args.dry_run or args.certificate):
        raise FieldError(
            "--purge", "--purge goes alone: not with --no-purge, --dry-run or --certificate"
        )
    with open_registry(args) as reg:
        retain = _retain(args)
        if not args.dry_run:
            # Refused here, before anything is erased, rather than after the erasure
            # commits, when its checkpoint and certificate cannot be signed.
            store = reg.ledger.store
            signing_key(store.url, args.settings.signing_key, store=store, announce=False)
        if args.purge_only:
            return _emit(args, reg.purge(), render_purge)
        if args.resume:
            done = reg.resume_erasures(purge=not args.no_purge)
            return _emit(args, done, render_resumed)
        if args.from_file:
            return _erase_file(args, reg, retain)
        outcome = reg.erase(
            args.subject, dry_run=args.dry_run, retain=retain, purge=not args.no_purge
        )
        if args.certificate and outcome["status"] in ("erased", "resumed", "already-erased"):
            outcome["certificate"] = _write_certificate(
                reg, outcome["erasure"], args.certificate, outcome["purge"]
            )
        return _emit(args, outcome, render_erasure)


def _erase_file(args: argparse.Namespace, reg: Registry, retain: list[dict[str, str]]) -> int:
    from pathlib import Path

    from tqdm import tqdm

    if args.dry_run:
        raise FieldError("--dry-run", "--dry-run plans one subject: give SUBJECT, not --from-file")
    if args.certificate and not Path(args.certificate).is_dir():
        raise FieldError(
            "--certificate",
            f"--certificate {args.certificate}: expected a directory with --from-file",
        )
    lines = Path(args.from_file).read_text(encoding="utf-8").splitlines()
    subjects = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    outcomes = []
    with tqdm(total=len(subjects), unit="subject", desc="erasing", file=sys.stderr) as bar:
        for subject in subjects:
            try:
                outcome = reg.erase(subject, retain=retain, purge=False, sign=False)
            except NotFound:
                outcome = {"status": "not-found", "erasure": None, "subject": None}
            outcomes.append(outcome)
            bar.update(1)
    erased = [o for o in outcomes if o["status"] in ("erased", "resumed")]
    summary: dict[str, Any] = {"subjects": len(subjects), "outcomes": outcomes}
    if erased:
        summary["finish"] = reg.purge() if not args.no_purge else None
    purged = (summary.get("finish") or {}).get("purge")
    if args.certificate:
        for outcome in outcomes:
            if outcome["erasure"] and outcome["status"] != "not-found":
                outcome["certificate"] = _write_certificate(
                    reg, outcome["erasure"], args.certificate, purged
                )
    return _emit(args, summary, render_batch)


def cmd_keys(args: argparse.Namespace) -> int:
    """create, list and revoke API keys

    API keys of the HTTP API: each for one project and one role; only a key's hash is
    stored."""
    from registry import auth
    from registry.settings import default_actor

    if args.keys_command == "create":
        auth.check_role(args.role)  # before a ledger is created for it
    with _store(args, create=args.keys_command == "create") as store:
        if args.keys_command == "create":
            key, token = auth.create_key(
                store,
                project=args.project,
                role=args.role,
                name=args.name,
                created_by=default_actor(args.settings),
            )
            return _emit(args, {**key.as_dict(), "token": token}, render_new_key)
        if args.keys_command == "revoke":
            key = auth.revoke_key(
                store,
                key_id=args.key_id,
                revoked_by=default_actor(args.settings),
                project=args.project,
            )
            return _emit(args, key.as_dict(), render_revoked_key)
        keys = [k.as_dict() for k in auth.list_keys(store, project=args.project)]
        return _emit(args, keys, render_keys)


def cmd_grants(args: argparse.Namespace) -> int:
    """let another project use and read this project's dataset and model versions

    A grant from project P to project Q lets Q's runs take P's dataset and model versions as
    inputs (and derive from them), and Q's readers see P's nodes in answers. Grants and
    revocations are events of P's log, made by P's admin (over HTTP: POST/DELETE
    /api/v1/projects/P/grants)."""
    from registry import grants, services
    from registry.assembly import open_ledger
    from registry.settings import default_actor, normalise_url

    actor = default_actor(args.settings)

    url = normalise_url(args.db, args.settings)
    ledger = open_ledger(url, create=args.grants_command == "add", settings=args.settings)
    try:
        if args.grants_command in ("add", "revoke"):
            change = grants.grant if args.grants_command == "add" else grants.revoke
            position = change(ledger, args.project, args.grantee, actor=actor, reason=args.reason)
            done = {"position": position, "project": args.project, "grantee": args.grantee}
            return _emit(args, done, render_grant_change(args.grants_command))
        return _emit(args, services.project_grants(ledger, args.project), render_grants)
    finally:
        ledger.close()


def cmd_access_trail(args: argparse.Namespace) -> int:
    """who asked what, and the answers

    Entries of the append-only access trail: every request allowed or denied, with the key,
    the action, the resource and the outcome."""
    from registry import auth

    with _store(args) as store:
        rows = auth.read_trail(store, project=args.project, since=args.since, limit=args.limit)
        return _emit(args, rows, render_trail)


def cmd_init(args: argparse.Namespace) -> int:
    """create a new ledger at --db (other commands never create one)

    Create a ledger: the SQLite file (or the tables of a PostgreSQL database), migrated to
    the current schema, and its key directory. Commands that only read refuse a database
    holding no ledger instead of creating one, so a mistyped --db fails rather than
    answering from an empty ledger. 'mlledger demo' and a first write (keys create, grants
    add) also create one."""
    from registry.errors import NoLedger
    from registry.settings import key_directory, normalise_url, shown_url
    from registry.store import Store, opened

    url = normalise_url(args.db, args.settings)
    try:
        with opened(url, create=False) as store, store.read() as conn:
            done: dict[str, Any] = {"created": False, "events": Store.max_position(conn) + 1}
    except NoLedger:
        with opened(url) as store, store.read() as conn:
            done = {"created": True, "events": Store.max_position(conn) + 1}
    done["database"] = shown_url(url)
    done["key_directory"] = str(key_directory(url))
    return _emit(
        args,
        done,
        lambda d: (
            f"created a new, empty ledger at {d['database']} "
            f"(its keys are kept in {d['key_directory']})"
            if d["created"]
            else f"a ledger is already at {d['database']}, with "
            f"{counted(d['events'], 'event')}: nothing changed"
        ),
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """record a realistic scenario and answer the six questions

    Record a breast-cancer screening scenario (datasets, two training runs, a canary
    deployment, predictions, a vault entry) in project 'demo' unless --project says
    otherwise, then answer the six questions, prove the log, erase a patient and write a
    dossier, a subject-access report and an export. A second run finds the scenario and
    records nothing."""
    from registry.demo import run_demo

    return run_demo(
        args.db,
        project=args.project or "demo",
        predictions=args.predictions,
        as_json=args.json,
        settings=args.settings,
    )


# --- text rendering --------------------------------------------------------------------------


def _short(node: str | None) -> str:
    """A node id as text shows it: what it names within its project (``label_of``)."""
    if node is None:
        return "-"
    # Run ids are UUIDv7: the leading digits are a timestamp, the trailing ones tell runs apart.
    return f"run:…{node[-8:]}" if kind_of(node) == "run" else label_of(node)


def _when(ts: str | None) -> str:
    return "now" if ts is None else ts[:19].replace("T", " ")


def _typed(kind: type[AnswerT], answer: AnswerT | dict[str, Any]) -> AnswerT:
    """``answer`` as the typed answer ``kind``: the SDK hands out its JSON form."""
    return answer if isinstance(answer, kind) else kind.model_validate(answer)


def _erasure(e: answers.ErasureNote) -> str:
    """An answer's ``erased`` member in words: the erasure, its positions and time."""
    return (
        f"erased at position {e.position} (erasure {e.erasure}, requested at position "
        f"{e.requested_position}, erased {_when(e.erased_at)})"
    )


def _withheld(n: int | None) -> list[str]:
    """The line saying how many nodes an answer left out (``withheld``), if any."""
    return [f"  withheld: {counted(n, 'node')} of projects this one may not read"] if n else []


def _runs(runs: list[answers.RunNode]) -> str:
    return ", ".join(f"{r['job']} (…{r['run'][-8:]})" for r in runs)


def render_scored(answer: answers.ScoredAnswer | dict[str, Any]) -> str:
    d = _typed(answers.ScoredAnswer, answer)
    gone = d.erased
    if d.record is None and gone is not None:
        return (
            f"this record was {_erasure(gone)}: its predictions are kept without the record, "
            "their output or trace id, so none is shown"
        )
    n = d.times_scored
    head = f"was scored {counted(n, 'time')}:" if n else "was never scored"
    lines = [f"{d.record} {head}"]
    lines += [
        f"  {_when(p['at'])}  {_short(p['model']):<22} in {_short(p['deployment']):<18} "
        f"output={json.dumps(p['output'])}  (position {p['position']}"
        + (f", trace {p['trace_id']})" if p["trace_id"] else ")")
        for p in d.predictions
    ]
    if gone is not None:
        lines.append(f"  earlier, the record was {_erasure(gone)}; what is shown came after it")
    return "\n".join(lines)


def render_trained_on(answer: answers.TrainedOnAnswer | dict[str, Any]) -> str:
    d = _typed(answers.TrainedOnAnswer, answer)
    lines = [
        f"{_short(d.model)} was trained on {counted(len(d.datasets), 'dataset version')} "
        f"through {counted(len(d.runs), 'run')}" + (":" if d.datasets else "")
    ]
    for ds in d.datasets:
        rows = "" if ds["row_count"] is None else f", {counted(ds['row_count'], 'row')}"
        lines.append(
            f"  {_short(ds['dataset']):<28} {ds['relation']:<9} depth {ds['depth']}  "
            f"{counted(ds['records'], 'record')}{rows}  {ds['digest'] or 'no digest'}"
        )
    if d.runs:
        lines.append(f"  runs: {_runs(d.runs)}")
    return "\n".join(lines + _withheld(d.withheld))


def _labels(nodes: list[answers.DatasetNode] | list[answers.ModelNode]) -> str:
    return ", ".join(n["label"] or "" for n in nodes)


def render_summary(
    d: answers.Downstream | answers.DownstreamAnswer | answers.FootprintAnswer,
) -> list[str]:
    """The runs, dataset versions, model versions and deployments of a ``downstream`` or
    (derived from the subject's data) ``footprint`` answer: one line each, by label."""
    derived = isinstance(d, answers.FootprintAnswer)
    datasets = d.derived_datasets if isinstance(d, answers.FootprintAnswer) else d.datasets
    lines = []
    for name, items in (
        ("runs", _runs(d.runs)),
        (
            "derived datasets" if derived else "datasets",
            ", ".join(x["label"] or "" for x in datasets),
        ),
        ("models", ", ".join(m["label"] or "" for m in d.models)),
    ):
        if items:
            lines.append(f"  {name}: {items}")
    for dep in d.deployments:
        lines.append(
            f"  deployment {_short(dep['deployment'])} served "
            + ", ".join(_short(m) for m in dep["serves_from_here"])
        )
    return lines


def render_downstream(answer: answers.DownstreamAnswer | dict[str, Any]) -> str:
    d = _typed(answers.DownstreamAnswer, answer)
    lines = [f"downstream of {_short(d.dataset)}:", *render_summary(d)]
    for p in d.predictions:
        lines.append(
            f"  {p['count']:>6} {noun(p['count'], 'prediction')} by {_short(p['model'])} in "
            f"{_short(p['deployment'])} ({_when(p['first_at'])} .. {_when(p['last_at'])})"
        )
    lines.append(f"  total predictions: {d.total_predictions}")
    return "\n".join(lines + _withheld(d.withheld))


def render_lineage(answer: answers.LineageAnswer | dict[str, Any]) -> str:
    d = _typed(answers.LineageAnswer, answer)
    if d.erased is not None:
        return f"{d.root} was {_erasure(d.erased)}: it has no lineage (0 nodes, 0 edges)"
    when = f" as of {d.as_of}" if d.as_of else ""
    lines = [
        f"lineage of {d.root} ({d.direction}, up to {counted(d.depth, 'hop')}){when}: "
        f"{counted(len(d.nodes), 'node')}, {counted(len(d.edges), 'edge')}"
    ]
    lines += [
        f"  node {n['id']}  ({n['kind']} {n['label']}, {counted(n['distance'], 'hop')} away, "
        f"created {_when(n['created_at'])})"
        for n in d.nodes
    ]
    lines += [
        f"  {e['src']}  -[{e['kind']}]->  {e['dst']}"
        + (f"  (until {_when(e['valid_to'])})" if e["valid_to"] else "")
        for e in d.edges
    ]
    return "\n".join(lines + _withheld(d.withheld))


def render_footprint(answer: answers.FootprintAnswer | dict[str, Any]) -> str:
    d = _typed(answers.FootprintAnswer, answer)
    gone = d.erased
    if gone is not None and not d.records and not d.vault_entries:
        return (
            f"{d.subject} was {_erasure(gone)}: no record, dataset version, prediction or "
            "vault entry of this subject is held"
        )
    lines = [
        f"{d.subject}: {counted(len(d.records), 'record')}, "
        f"{counted(len(d.datasets), 'dataset version')}, "
        f"{counted(len(d.predictions), 'prediction')}, "
        f"{counted(d.vault_entries, 'vault entry', 'vault entries')}"
    ]
    for r in d.records:
        lines.append(f"  {_short(r['record'])} in " + ", ".join(_short(x) for x in r["datasets"]))
    lines += render_summary(d)
    for p in d.predictions:
        lines.append(
            f"  scored {_when(p['at'])} by {_short(p['model'])} in {_short(p['deployment'])}: "
            f"{_short(p['record'])} (position {p['position']})"
        )
    lines += _withheld(d.withheld)
    if gone is not None:
        lines.append(f"  earlier, this subject was {_erasure(gone)}; what is shown came after it")
    return "\n".join(lines)


def render_erasure(d: dict[str, Any]) -> str:
    if d["status"] == "planned":
        p = d["plan"]
        lines = [
            f"plan for {d['subject']} (nothing changed):",
            f"  {counted(p['records']['count'], 'record')} in "
            f"{counted(len(p['datasets']), 'dataset version')}; "
            f"{counted(p['vault_entries'], 'vault entry', 'vault entries')}; "
            f"{counted(p['predictions']['count'], 'prediction')}",
        ]
        for key, label in (
            ("datasets", "holding"),
            ("derived_datasets", "derived"),
            ("runs", "runs"),
            ("models", "models"),
            ("deployments", "deployments"),
        ):
            if p[key]:
                lines.append(f"  {label}: " + ", ".join(_short(n) for n in p[key]))
        lines.append(f"  events to redact: {len(p['events_to_redact'])}")
        return "\n".join(lines)
    if d["status"] == "already-erased":
        return (
            f"{d['subject']} was already erased (erasure {d['erasure']}, position "
            f"{d['erased_position']}): nothing to do"
        )
    lines = [
        f"{d['status']}: {d['subject']}, erasure {d['erasure']} "
        f"(requested at position {d['requested_position']}, erased at {d['erased_position']})",
        f"  {counted(d['redactions'], 'event')} redacted; "
        f"{counted(d['plan']['records']['count'], 'record')}, "
        f"{counted(d['plan']['predictions']['count'], 'prediction')}, "
        f"{counted(d['plan']['vault_entries'], 'vault entry', 'vault entries')} erased",
    ]
    lines += [
        f"  {_short(m['model'])}: {m['status']}"
        + (f" ({m['justification']}; approved by {m['approver']})" if m.get("approver") else "")
        for m in d["models"]
    ]
    if d["status"] in ("erased", "resumed"):
        lines.append(f"  {audit_cli.purged(d.get('purge'))}")
    if d.get("certificate"):
        lines.append(f"  certificate: {d['certificate']}")
    return "\n".join(lines)


def render_batch(d: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for outcome in d["outcomes"]:
        counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
    done = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [f"{counted(d['subjects'], 'subject')}: {done or 'none'}"]
    if "finish" in d:
        lines.append(audit_cli.purged((d["finish"] or {}).get("purge")))
    return "\n".join(lines)


def render_purge(d: dict[str, Any]) -> str:
    checkpoint = d.get("checkpoint")
    signed = (
        f"; checkpoint #{checkpoint['seq']} signs {counted(checkpoint['size'], 'event')}"
        if checkpoint
        else ""
    )
    return audit_cli.purged(d["purge"]) + signed


def render_resumed(outcomes: list[dict[str, Any]]) -> str:
    if not outcomes:
        return "no interrupted erasure to resume"
    return f"resumed {counted(len(outcomes), 'interrupted erasure')}: " + ", ".join(
        str(o["erasure"]) for o in outcomes
    )


def render_log(events: list[dict[str, Any]]) -> str:
    return (
        "\n".join(
            f"{e['position']:>6}  {e['occurred_at']}  {e['type']:<28} {e['entity']}"
            f"  by {e['actor']}"
            for e in events
        )
        or "(no events)"
    )


def render_history(answer: answers.HistoryAnswer | dict[str, Any]) -> str:
    d = _typed(answers.HistoryAnswer, answer)
    lines = [f"{_short(d.deployment)} ({d.status}, {d.endpoint}):"]
    lines += [
        f"  {_when(i.start)} .. {_when(i.end):<19}  {_short(i.model):<22} "
        f"{i.traffic:g}% traffic" + (f" at {i.endpoint}" if i.endpoint != d.endpoint else "")
        for i in d.intervals
    ]
    return "\n".join(lines)


def render_aliases(answer: answers.AliasesAnswer | dict[str, Any]) -> str:
    d = _typed(answers.AliasesAnswer, answer)
    if not d.history:
        return f"model {d.model} has no aliases: none was ever pointed at one of its versions"
    now = ", ".join(f"{alias} -> {_short(m)}" for alias, m in sorted(d.current.items()))
    lines = [f"aliases of {d.model}" + (f" (now {now}):" if now else ":")]
    for alias, spans in sorted(d.history.items()):
        lines += [
            f"  {alias:<12} {_short(s.model):<22} {_when(s.start)} .. {_when(s.end):<19}"
            f"  moved by {s.moved_by}"
            for s in spans
        ]
    return "\n".join(lines)


def _key_line(k: dict[str, Any]) -> str:
    state = "active"
    if k["revoked_at"]:
        state = f"revoked {_when(k['revoked_at'])} by {k['revoked_by']}"
    label = f"  {k['name']!r}" if k["name"] else ""
    return (
        f"{k['key_id']}  {k['project']:<16} {k['role']:<8} {state:<8}  "
        f"created {_when(k['created_at'])} by {k['created_by']}{label}"
    )


def render_new_key(k: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"created {k['role']} key {k['key_id']} for project {k['project']}",
            k["token"],
            "this token cannot be shown again: store it now (mlledger keeps only its hash)",
        ]
    )


def render_revoked_key(k: dict[str, Any]) -> str:
    return f"key {k['key_id']} revoked at {k['revoked_at']} by {k['revoked_by']}"


def render_keys(keys: list[dict[str, Any]]) -> str:
    return "\n".join(_key_line(k) for k in keys) or "(no keys)"


def render_grant_change(action: str) -> Any:
    def render(done: dict[str, Any]) -> str:
        verb = "granted" if action == "add" else "revoked"
        return (
            f"{done['project']} {verb} {done['grantee']} access to its dataset and model "
            f"versions (log position {done['position']})"
        )

    return render


def render_grants(rows: list[dict[str, Any]]) -> str:
    return (
        "\n".join(
            f"{g['project']} -> {g['grantee']}: granted at {g['granted_at']} by "
            f"{g['granted_by']} (position {g['granted_position']})"
            + (
                f", revoked at {g['revoked_at']} by {g['revoked_by']} "
                f"(position {g['revoked_position']})"
                if g["revoked_position"] is not None
                else ", in force"
            )
            for g in rows
        )
        or "(no grants)"
    )


def render_trail(rows: list[dict[str, Any]]) -> str:
    return (
        "\n".join(
            f"{r['seq']:>6}  {r['at']}  {r['outcome']:<5} {r['status']}  {r['action']:<20} "
            f"{r['resource']}  by {r['actor']} from {r['source']}"
            + (f"  [{r['project']}]" if r["project"] else "")
            + f"  ({r['reason']})"
            for r in rows
        )
        or "(no entries)"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """serve the HTTP API and the web interface (uvicorn)

    Serve the HTTP API (docs/api.md) under /api/v1 and the web interface (docs/ui.md)
    at /, under uvicorn, signing checkpoints as the log grows; requests need an API key
    (mlledger keys create), which the web interface's sign-in page takes once."""
    from registry.serve import ensure_ledger, serve
    from registry.settings import normalise_url

    url = normalise_url(args.db, args.settings)
    ensure_ledger(url)  # before the signing key is made beside it
    _check_serving_key(url, args.settings)
    serve(
        url,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
    )
    return 0


def _check_serving_key(url: str, settings: Settings) -> None:
    """Before serving: the signing key of the automatic checkpoints, made on first use,
    and refused (``ConfigError``, exit 2) when it is missing or another key signed
    the log's checkpoints, rather than a server that fails to sign every second."""
    from registry.store import opened

    if settings.checkpoint_every == 0:
        return
    with opened(url) as store:
        signing_key(url, settings.signing_key, store=store)


def cmd_openapi(args: argparse.Namespace) -> int:
    """print the API's OpenAPI document (JSON)

    Print the HTTP API's OpenAPI 3.1 document, as pinned in docs/openapi.json."""
    from registry.api.openapi import text

    print(text(), end="")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "init": cmd_init,
    "scored": _question("scored", "ScoredAnswer", render_scored),
    "trained-on": _question("trained_on", "TrainedOnAnswer", render_trained_on),
    "downstream": _question("downstream", "DownstreamAnswer", render_downstream),
    "lineage": cmd_lineage,
    "footprint": _question("footprint", "FootprintAnswer", render_footprint),
    "history": _question("history", "HistoryAnswer", render_history),
    "erase": cmd_erase,
    "aliases": _question("aliases", "AliasesAnswer", render_aliases),
    "rebuild": cmd_rebuild,
    "log": cmd_log,
    "keys": cmd_keys,
    "grants": cmd_grants,
    "access-trail": cmd_access_trail,
    "serve": cmd_serve,
    "openapi": cmd_openapi,
    "audit": audit_cli.run,
    **compliance_cli.COMMANDS,
    "jobs": jobs_cli.run,
    "serve-model": serving_cli.run,
    "graph": graph_cli.run,
}

if __name__ == "__main__":
    sys.exit(main())
