"""``mlledger audit ...``: signing key, checkpoints, verification and proofs.

Exit status: 0 when everything checks out, 3 when verification finds the log,
a proof or a checkpoint not as signed (``EXIT_INVALID``), 2 for bad input and
1 when the database cannot be used (as every other command).
"""

from __future__ import annotations

import argparse
import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.commands import (
    Action,
    Command,
    add_db,
    add_group,
    add_json,
    add_key,
    print_json_or_text,
    signing_key,
    whole_number,
)
from registry.errors import ConfigError
from registry.wording import counted

if TYPE_CHECKING:
    from registry.store import Store

EXIT_INVALID = 3
TREES = ("events", "access")


def _key(parser: argparse.ArgumentParser) -> None:
    add_key(parser, "the signing key's file")


def _keygen(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name", help="the key's name, also the log's origin (default: <host>/mlledger/<random>)"
    )


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="also write it to this file")


def _both_trees(p: argparse.ArgumentParser) -> None:
    help_text = "the events log, the access trail, or both (default)"
    p.add_argument("--tree", choices=(*TREES, "both"), default="both", help=help_text)


def _one_tree(p: argparse.ArgumentParser) -> None:
    help_text = "the events log (default) or the access trail"
    p.add_argument("--tree", choices=TREES, default="events", help=help_text)


def _local_public_key(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--public-key",
        help="verifier key (file or string) for the signatures (default: the local signing "
        "key's, when there is one)",
    )


def _workers(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=whole_number,
        help="processes that recompute the leaves, each over ranges of the log (default: one "
        "per CPU; 1: all in this process)",
    )


def _prove(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "position", type=whole_number, help="the event's position (or --trail: entry seq)"
    )
    p.add_argument("--trail", action="store_true", help="prove an access-trail entry instead")
    p.add_argument(
        "--since",
        type=whole_number,
        help="add the consistency proof from a checkpoint of this size you already hold",
    )
    p.add_argument("--out", help="write the bundle here (default: print it)")


def _verify_proof(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="the proof bundle (JSON) from `mlledger audit prove`")
    p.add_argument("--public-key", required=True, help="verifier key (file or string)")
    p.add_argument(
        "--trusted",
        help="a signed checkpoint you kept earlier: the bundle's must be consistent with it",
    )


def _verify_certificate(p: argparse.ArgumentParser) -> None:
    p.add_argument("certificate", help="the certificate (a DSSE envelope, JSON)")
    p.add_argument("--public-key", required=True, help="verifier key (file or string)")


def add_parser(sub: Any) -> None:
    """The ``audit`` command and its actions (``ACTIONS``)."""
    add_group(
        sub,
        "audit",
        help="signed checkpoints, verification and Merkle proofs of the log",
        description="The tamper-evident log: the Ed25519 key that signs checkpoints, the "
        "checkpoints themselves, verification of every leaf and checkpoint, and inclusion "
        "proofs an auditor checks offline (docs/audit.md).",
        dest="audit_command",
        actions=ACTIONS,
    )


def _store(args: argparse.Namespace) -> AbstractContextManager[Store]:
    from registry.settings import normalise_url
    from registry.store import opened

    url = normalise_url(args.db, args.settings)
    return opened(url, create=False)  # audit commands never create a ledger


def run(args: argparse.Namespace) -> int:
    return COMMANDS[args.audit_command](args)


def cmd_keygen(args: argparse.Namespace) -> int:
    """create the Ed25519 key that signs checkpoints

    Create the Ed25519 key that signs the log's checkpoints (mode 0600) and print its public
    key, for verifiers."""
    from audit.checkpoints import create_signing_key
    from registry.settings import normalise_url

    key, path = create_signing_key(normalise_url(args.db, args.settings), args.key, args.name)
    verifier = key.verifier().to_string()
    data = {"path": str(path), "name": key.name, "public_key": verifier}
    print_json_or_text(
        args,
        data,
        f"created signing key {key.name} at {path} (mode 0600; keep it off the database "
        f"host's backups)\npublic key, for verifiers:\n{verifier}",
    )
    return 0


def cmd_public_key(args: argparse.Namespace) -> int:
    """print the public (verifier) key

    Print the verifier key of the log's signing key: what an auditor needs to check
    checkpoints, proofs, certificates and exports offline."""
    from audit.checkpoints import load_signing_key
    from registry.settings import normalise_url

    key, _, _ = load_signing_key(normalise_url(args.db, args.settings), args.key)
    verifier = key.verifier().to_string()
    if args.out:
        Path(args.out).write_text(verifier + "\n")
    print(verifier)
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """sign a checkpoint of the log and the access trail now

    Sign a checkpoint (tree size and root hash, as a signed note) of the events log, the
    access trail or both; a tree that did not grow keeps its last one."""
    from audit.checkpoints import write_checkpoint

    with _store(args) as store:
        key = signing_key(store.url, args.key or args.settings.signing_key)
        trees = TREES if args.tree == "both" else (args.tree,)
        out = []
        for tree in trees:
            checkpoint, new = write_checkpoint(store, key, tree)
            out.append({**checkpoint.as_dict(), "written": new})
    text = []
    for c in out:
        state = "signed" if c["written"] else "unchanged since"
        text.append(f"{c['tree']}: {state} checkpoint #{c['seq']} at size {c['tree_size']}")
        text.append(c["note"].rstrip("\n"))
    print_json_or_text(args, out, "\n".join(text))
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    """list the stored checkpoints

    The signed checkpoints of one tree, oldest first: sequence number, tree size, root hash
    (base64) and when it was signed."""
    from audit.checkpoints import stored_checkpoints

    with _store(args) as store, store.read() as conn:
        rows = [c.as_dict() for c in stored_checkpoints(conn, args.tree)]
    text = "\n".join(
        f"#{c['seq']:<5} size {c['tree_size']:<10} root {c['root_hash']}  signed {c['signed_at']}"
        for c in rows
    )
    print_json_or_text(args, rows, text or f"(no {args.tree} checkpoints)")
    return 0


def _verifier(text: str) -> Any:
    from audit.note import NoteError, VerifierKey

    try:
        return VerifierKey.load(text)
    except NoteError as exc:
        raise ConfigError(f"public key: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the public key {text}: {exc}") from None


def _local_verifier(url: str) -> Any:
    """The verifier key of the local signing key of the log at ``url``, or None when
    there is no key file; an unreadable or unsafe one is a ``ConfigError``."""
    from audit.checkpoints import key_path
    from audit.note import NoteError, SigningKey

    path = key_path(url)
    if not path.exists():
        return None
    try:
        return SigningKey.load(path).verifier()
    except NoteError as exc:
        raise ConfigError(f"{exc} (or give the verifier key with --public-key)") from None


def cmd_verify(args: argparse.Namespace) -> int:
    """recompute both trees from storage and check every checkpoint

    Recompute every leaf hash and both Merkle trees from what is stored, and check every
    checkpoint's signature and consistency; exit 3 naming the first position that is not as
    signed. A large log's leaves are recomputed by --workers processes at once."""
    from audit.checkpoints import sync_tree
    from audit.verify import verify

    with _store(args) as store:
        key = _verifier(args.public_key) if args.public_key else _local_verifier(store.url)
        sync_tree(store)
        report = verify(store, key, workers=args.workers)
    print_json_or_text(args, report.as_dict(), report.summary())
    return 0 if report.ok else EXIT_INVALID


def cmd_prove(args: argparse.Namespace) -> int:
    """an event, its inclusion proof and the checkpoint

    A proof bundle: an event (or access-trail entry) as stored, its inclusion proof and the
    signed checkpoint it leads to; `audit verify-proof` checks it offline."""
    from audit.proofs import make_bundle

    with _store(args) as store:
        bundle = make_bundle(
            store, args.position, "access" if args.trail else "events", since=args.since
        )
    text = json.dumps(bundle, indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(
            f"wrote the proof of {bundle['tree']} entry {bundle['index']} against the "
            f"checkpoint at size {bundle['tree_size']} to {args.out}"
        )
    else:
        print(text, end="")
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    """check a proof bundle offline with the public key alone

    Check a proof bundle offline: the checkpoint's signature, the inclusion proof and, with
    --trusted, consistency with a checkpoint kept earlier; exit 3 when it does not verify."""
    from audit.proofs import ProofError, verify_bundle

    key = _verifier(args.public_key)
    try:
        bundle = json.loads(Path(args.bundle).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the proof bundle {args.bundle}: {exc}") from None
    trusted = None
    if args.trusted:
        try:
            trusted = Path(args.trusted).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the trusted checkpoint: {exc}") from None
    try:
        verified = verify_bundle(bundle, key, trusted)
    except ProofError as exc:
        print_json_or_text(args, {"ok": False, "error": str(exc)}, f"FAILED: {exc}")
        return EXIT_INVALID
    data = verified.as_dict()
    what = "position" if verified.tree == "events" else "access-trail entry"
    lines = [
        f"OK: {what} {verified.index} is in the log {verified.checkpoint.origin} "
        f"at size {verified.tree_size} (root {data['root_hash']}), signed by "
        f"{key.name}+{key.key_id:08x}"
    ]
    if verified.trusted_size is not None:
        lines.append(
            f"and that log is consistent with your checkpoint at size {verified.trusted_size}"
        )
    lines.append(json.dumps(verified.entry, indent=2, sort_keys=True))
    print_json_or_text(args, data, "\n".join(lines))
    return 0


def purged(purge: dict[str, Any] | None) -> str:
    """One line on the physical purge a certificate or an erasure records."""
    if not purge:
        return "purge: none recorded (--no-purge, or the certificate was made later)"
    return f"purged ({purge['method']}), finished {purge['finished_at']} after {purge['seconds']} s"


def cmd_verify_certificate(args: argparse.Namespace) -> int:
    """check an erasure certificate offline with the public key alone

    Check an erasure certificate offline: its signature, the checkpoint's, both inclusion
    proofs and that every claim matches the proved events; exit 3 when it does not verify."""
    from audit.erasure.certificate import CertificateError, verify_certificate

    key = _verifier(args.public_key)
    try:
        envelope = json.loads(Path(args.certificate).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the certificate {args.certificate}: {exc}") from None
    try:
        verified = verify_certificate(envelope, key)
    except CertificateError as exc:
        print_json_or_text(args, {"ok": False, "error": str(exc)}, f"FAILED: {exc}")
        return EXIT_INVALID
    data = verified.as_dict()
    remediation = "; ".join(f"{m['model']}: {m['status']}" for m in verified.remediation)
    lines = [
        f"OK: erasure {verified.erasure} of {verified.subject} is in the log "
        f"{verified.origin} (requested at position {verified.requested_position}, "
        f"{verified.requested_at}; completed at {verified.completed_position}, "
        f"{verified.completed_at}), signed by {key.name}+{key.key_id:08x}",
        f"  {counted(verified.records, 'record')}, "
        f"{counted(len(verified.datasets), 'dataset version')}, "
        f"{counted(verified.predictions, 'prediction')}, "
        f"{counted(verified.vault_entries, 'vault entry', 'vault entries')}; "
        f"{counted(len(verified.redactions), 'event')} redacted",
        f"  models: {remediation or 'none'}",
        f"  {purged(verified.purge)}",
        "  an attestation of the erasure process, not a proof that no copy exists elsewhere",
    ]
    print_json_or_text(args, data, "\n".join(lines))
    return 0


#: Each action: its name, its command (whose docstring is its help: a summary, then
#: the description) and what adds its arguments, in order.
ACTIONS: tuple[Action, ...] = (
    ("keygen", cmd_keygen, (add_db, _key, add_json, _keygen)),
    ("public-key", cmd_public_key, (add_db, _key, _out)),
    ("checkpoint", cmd_checkpoint, (add_db, _key, add_json, _both_trees)),
    ("checkpoints", cmd_checkpoints, (add_db, add_json, _one_tree)),
    ("verify", cmd_verify, (add_db, add_json, _local_public_key, _workers)),
    ("prove", cmd_prove, (add_db, _prove)),
    ("verify-proof", cmd_verify_proof, (_verify_proof, add_json)),
    ("verify-certificate", cmd_verify_certificate, (_verify_certificate, add_json)),
)

COMMANDS: dict[str, Command] = {name: command for name, command, _ in ACTIONS}
