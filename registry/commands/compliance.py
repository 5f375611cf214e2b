"""``mlledger report ...`` and ``mlledger export ...``: what a compliance officer hands over.

- ``report model MODEL --out DIR``: the model dossier (``audit.reports``), a
  self-contained HTML page, a Markdown model card and proof bundles; MODEL as every
  question takes a model version (``registry.services.resolve_model``).
- ``report subject SUBJECT --out DIR``: the subject-access report (GDPR Art. 15).
  Over HTTP (``--db http://...``) it needs a data-protection officer's key.
- ``export --format F --out DIR [--project P] [--since T] [--until T]``: Parquet,
  OpenLineage or PROV-JSON files with a signed manifest (``audit.exports``).
- ``export verify DIR --public-key KEY``: check an export offline; exit 3 and name
  the changed, missing and extra files when it differs from its manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.commands import (
    PROJECT_HELP,
    add_command,
    add_db,
    add_json,
    add_key,
    open_registry,
    print_json_or_text,
    signing_key,
)
from registry.commands.audit import EXIT_INVALID, _verifier
from registry.errors import InvalidInput
from registry.wording import counted

if TYPE_CHECKING:
    from registry.sdk import Registry

FORMATS = ("parquet", "openlineage", "prov")


def _key(parser: argparse.ArgumentParser) -> None:
    add_key(parser, "the log's signing key file")


def add_parsers(sub: Any) -> None:
    """The ``report`` and ``export`` commands."""
    report = add_command(sub, "report", cmd_report)
    kinds = report.add_subparsers(dest="report_command", required=True, metavar="KIND")

    p = add_command(kinds, "model", _report_model)
    p.add_argument(
        "model",
        help="model version: NAME@VERSION, NAME@ALIAS, NAME@latest, model:PROJECT/NAME@VERSION "
        "or its OpenLineage id dataset:PROJECT:model/NAME (the newest version)",
    )
    p.add_argument("--out", required=True, help="a new or empty directory to write it to")
    add_db(p)
    p.add_argument("--project", help=PROJECT_HELP)
    _key(p)
    add_json(p, "print what was written as JSON")

    p = add_command(kinds, "subject", _report_subject)
    p.add_argument("subject", help="the data subject's id, as your data knows it")
    p.add_argument("--out", required=True, help="a new or empty directory to write it to")
    add_db(p)
    p.add_argument("--project", help=PROJECT_HELP)
    add_json(p, "print what was written as JSON")

    p = add_command(sub, "export", cmd_export)
    p.add_argument(
        "verify",
        nargs="*",
        metavar="verify DIR",
        help="check the export in DIR against its signed manifest instead",
    )
    p.add_argument("--format", choices=FORMATS, help="the export's format")
    p.add_argument("--out", help="a new or empty directory to write the export to")
    add_db(p)
    p.add_argument("--project", help="one project only (default: every project)")
    p.add_argument("--since", help="events recorded at or after this time (ISO 8601)")
    p.add_argument("--until", help="events recorded before this time (ISO 8601)")
    _key(p)
    p.add_argument("--public-key", help="verify: the log's verifier key (file or string)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json(p)


def _signing_key(args: argparse.Namespace, ledger: Any) -> Any:
    return signing_key(ledger.store.url, args.key or args.settings.signing_key)


def cmd_report(args: argparse.Namespace) -> int:
    """a model dossier or a subject-access report

    Reports a person reads, written as self-contained files: a model version's dossier, or a
    data subject's access report (docs/reports.md)."""
    from audit.outdir import new_or_empty

    new_or_empty(args.out)  # refused before anything is read, decrypted or signed
    with open_registry(args) as reg:
        report = _report_subject if args.report_command == "subject" else _report_model
        return report(args, reg)


def _report_subject(args: argparse.Namespace, reg: Registry) -> int:
    """a data subject's access report (GDPR Art. 15): HTML and JSON

    Write what the registry holds about a data subject into --out: index.html and
    report.json (GDPR Art. 15). Over HTTP it needs a dpo key."""
    from audit.reports.subject import write_subject_report

    report = reg.subject_report(args.subject)
    written = [str(p) for p in write_subject_report(report, args.out)]
    counts, gone = report["counts"], report["erased"]
    entries = counted(counts["vault_entries"], "personal-data entry", "personal-data entries")
    text = (
        f"wrote the subject-access report of {report['subject']} to {args.out}: "
        f"{counted(counts['records'], 'record')}, {entries}, "
        f"{counted(counts['models'], 'model')}, "
        f"{counted(counts['predictions'], 'prediction')}"
        + (f"; the subject was erased at position {gone['position']}" if gone else "")
    )
    written_out = {"files": written, "subject": report["subject"], "counts": counts}
    print_json_or_text(args, {**written_out, "erased": gone}, text)
    return 0


def _report_model(args: argparse.Namespace, reg: Registry) -> int:
    """a model version's dossier: HTML page, model card and proof bundles

    Write a model version's dossier into --out: index.html, model-card.md, the lineage and
    volume pictures, dossier.json and one proof bundle per key event under evidence/,
    against a checkpoint signed with the log's key."""
    from audit.reports import build_model_dossier
    from registry import services

    ledger = getattr(reg.backend, "ledger", None)
    if ledger is None:
        raise InvalidInput(
            "report model reads the database and signs with the log's key: give --db a "
            "database, not a server (the server answers GET /api/v1/projects/{p}/reports/"
            "models/{model})",
            field="--db",
        )
    # Named as every question names a model version; another project's stays unknown.
    node = services.resolve_model(ledger, reg.project, args.model)
    dossier = build_model_dossier(ledger, reg.project, node, _signing_key(args, ledger))
    written = [str(p) for p in dossier.write(Path(args.out))]
    model = dossier.data["model"]["id"]
    text = (
        f"wrote the dossier of {model} to {args.out}: index.html, model-card.md and "
        f"{counted(len(dossier.evidence), 'proof bundle')} under evidence/ (check each with "
        "`mlledger audit verify-proof FILE --public-key KEY`)"
    )
    print_json_or_text(args, {"files": written, "model": model}, text)
    return 0


def _progress(args: argparse.Namespace) -> Any:
    if args.no_progress:
        return None
    from tqdm import tqdm

    bars: list[Any] = []

    def start(total: int | None) -> Any:
        # Rows are whole: counted as integers, never scaled to "3.04k" or "0.00".
        bar = tqdm(total=total, unit="row", desc="exporting", file=sys.stderr)
        bars.append(bar)
        return bar.update

    start.bars = bars  # type: ignore[attr-defined]
    return start


def cmd_export(args: argparse.Namespace) -> int:
    """export the log as Parquet, OpenLineage or PROV-JSON with a signed manifest;
    `export verify DIR` checks one

    Export: mlledger export --format F --out DIR [--project P] [--since T] [--until T].
    Verify: mlledger export verify DIR --public-key KEY."""
    if args.verify:
        return _verify(args)
    if args.format is None or args.out is None:
        raise InvalidInput(
            "give --format (parquet, openlineage or prov) and --out DIR, "
            "or `export verify DIR --public-key KEY`",
            field="--format",
        )
    if args.public_key:
        raise InvalidInput(
            "--public-key is for `export verify`; an export signs with --key", field="--public-key"
        )
    from audit.exports import export

    progress = _progress(args)
    with open_registry(args) as reg:
        ledger = getattr(reg.backend, "ledger", None)
        if ledger is None:
            raise InvalidInput(
                "export reads the database itself: give --db a database, not a server", field="--db"
            )
        try:
            done = export(
                ledger,
                args.format,
                args.out,
                _signing_key(args, ledger),
                project=args.project,
                since=args.since,
                until=args.until,
                progress=progress,
            )
        finally:
            for bar in getattr(progress, "bars", []):
                bar.close()
    data = done.as_dict()
    text = (
        f"exported {counted(data['rows'], 'row')} in {counted(len(done.files), 'file')} "
        f"({args.format}) to "
        f"{done.directory}, reflecting the checkpoint at size {done.checkpoint['tree_size']} "
        f"of {done.checkpoint['origin']}; manifest.json is signed with the log's key"
    )
    print_json_or_text(args, data, text)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from audit.exports import ExportError, verify_export

    if len(args.verify) != 2 or args.verify[0] != "verify":
        raise InvalidInput(
            f"unexpected argument(s) {' '.join(args.verify)!r}: expected `export verify DIR`",
            field="verify",
        )
    if not args.public_key:
        raise InvalidInput(
            "export verify needs --public-key KEY (file or string)", field="--public-key"
        )
    key = _verifier(args.public_key)
    try:
        check = verify_export(args.verify[1], key)
    except ExportError as exc:
        print_json_or_text(args, {"ok": False, "error": str(exc)}, f"FAILED: {exc}")
        return EXIT_INVALID
    print_json_or_text(args, check.as_dict(), check.summary())
    return 0 if check.ok else EXIT_INVALID


COMMANDS = {"report": cmd_report, "export": cmd_export}
