"""Subcommands of the ``mlledger`` command line that ``registry.cli`` gathers: the
audit commands (``audit``) and the compliance commands (``report``, ``export``), and
what every command shares: its common options, the whole-number argument type, JSON
or text output, the SDK on ``--db`` and the signing key of a command about to sign.
Interfaces, like the API: they may use every layer below them.

``registry.cli.main`` reads the settings (``MLLEDGER_*``) once and hands them to each
command as ``args.settings``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.sdk import Registry

#: Help of every command's ``--db``.
DB_HELP = "database URL or SQLite file (default: MLLEDGER_DB or ./.mlledger/ledger.db)"
#: Help of ``--project`` where it defaults to the settings' project.
PROJECT_HELP = "project (default: MLLEDGER_PROJECT or 'default')"
#: Help of every command's ``--json``.
JSON_HELP = "print JSON instead of text"
#: Where ``--key`` looks when not given, after what names the key.
KEY_HELP = (
    " (default: MLLEDGER_SIGNING_KEY, else signing.key in the ledger's key directory: "
    "beside the SQLite database, or "
    "$XDG_CONFIG_HOME/mlledger/postgresql/<host>-<port>-<database>/ for PostgreSQL, "
    "~/.config when XDG_CONFIG_HOME is unset); a relative path is taken inside that "
    "directory, not the working directory"
)


def add_command(sub: Any, name: str, command: Callable[..., Any]) -> argparse.ArgumentParser:
    """The parser of command ``name`` (under ``sub``, an argparse subparsers group), its help
    the docstring of the function that runs it: the first paragraph the one-line summary
    ``--help`` lists, the rest the description (argparse refills both)."""
    summary, _, description = (command.__doc__ or "").strip().partition("\n\n")
    return sub.add_parser(name, help=" ".join(summary.split()), description=description)


#: What adds options to a command's parser, and what runs a command.
Adder = Callable[[argparse.ArgumentParser], None]
Command = Callable[[argparse.Namespace], int]
#: An action of a command with actions: its name, what runs it, what adds its options.
Action = tuple[str, Command, tuple[Adder, ...]]


def add_group(
    sub: Any,
    name: str,
    *,
    help: str,
    description: str,
    dest: str,
    actions: Sequence[Action],
    first: Sequence[Adder] = (),
    last: Sequence[Adder] = (),
) -> None:
    """Command ``name`` with its ``actions`` (``mlledger audit verify``): each action's
    parser gets the options of ``first``, then its own, then those of ``last``; the
    action chosen is ``args.<dest>``."""
    group = sub.add_parser(name, help=help, description=description)
    parsers = group.add_subparsers(dest=dest, required=True, metavar="ACTION")
    for action, command, adders in actions:
        p = add_command(parsers, action, command)
        for add in (*first, *adders, *last):
            add(p)


def add_db(parser: argparse.ArgumentParser) -> None:
    """``--db``."""
    parser.add_argument("--db", help=DB_HELP)


def add_json(parser: argparse.ArgumentParser, help: str = JSON_HELP) -> None:
    """``--json``."""
    parser.add_argument("--json", action="store_true", help=help)


def add_key(parser: argparse.ArgumentParser, what: str) -> None:
    """``--key``: ``what`` names the signing key's file, then where it is by default."""
    parser.add_argument("--key", help=what + KEY_HELP)


def whole_number(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: expected 0 or more")
    return value


def print_json_or_text(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON when the command was given ``--json``, else ``text``."""
    print(json.dumps(data, indent=2, sort_keys=True) if getattr(args, "json", False) else text)


def open_registry(args: argparse.Namespace) -> Registry:
    """The SDK on ``--db`` for ``--project``, as the command's settings say; a database
    holding no ledger is refused, never created."""
    from registry.sdk import connect

    return connect(args.db, project=args.project, create=False, settings=args.settings)


def signing_key(url: str, path: str | None, *, store: Any = None, announce: bool = True) -> Any:
    """The log's signing key for a command about to sign (``path``, else the settings'),
    made on first use (``announce``: saying so on stderr, with its public key)."""
    from audit.checkpoints import load_signing_key

    key, made_at, created = load_signing_key(url, path, create=True, store=store)
    if created and announce:
        print(
            f"created signing key {key.name} at {made_at}; public key: "
            f"{key.verifier().to_string()}",
            file=sys.stderr,
        )
    return key
