"""``mlledger graph ...``: the lineage graph's Neo4j projection (docs/neo4j.md).

- ``status``: the position the graph has reached, the lineage projection's, the lag
  between them in log positions, and the graph's node and edge counts.
- ``sync``: bring the graph up to the lineage projection once.
- ``rebuild``: drop the graph and replay it from the start; print its digest and the
  embedded graph's, which must be the same (exit 3 when they differ).
- ``follow``: keep the graph up to date until stopped (what ``mlledger serve`` runs
  beside the API when ``MLLEDGER_GRAPH`` is set); Neo4j out of reach is warned about
  and retried, never fatal.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from registry.commands import Action, add_db, add_group, add_json, print_json_or_text
from registry.errors import ConfigError

if TYPE_CHECKING:
    from lineage.neo4j import Neo4jGraph
    from registry.ledger import Ledger

EXIT_DIFFERS = 3
#: Times ``rebuild`` takes the two digests again while writes move the log meanwhile.
_COMPARE_ATTEMPTS = 5


def _graph_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--graph",
        help="the Neo4j graph, bolt://HOST:PORT or neo4j://HOST:PORT (default: "
        "MLLEDGER_GRAPH; credentials from MLLEDGER_GRAPH_USER, default neo4j, and "
        "MLLEDGER_GRAPH_PASSWORD)",
    )


def _follow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interval",
        type=_seconds,
        default=1.0,
        help="seconds between two catch-ups, more than 0 (default 1)",
    )


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} seconds: expected more than 0")
    return value


def cmd_status(args: argparse.Namespace) -> int:
    """where the Neo4j graph stands: position, lag, nodes and edges

    Where the Neo4j graph stands: the log position of the lineage projection it holds,
    the lineage projection's own (head), the lag between them in log positions, and
    the graph's node and edge counts."""
    with _opened(args) as (ledger, graph):
        status = graph.status(ledger)
    data = {
        "position": status.position,
        "head": status.head,
        "lag": status.lag,
        "nodes": status.nodes,
        "edges": status.edges,
    }
    text = (
        f"graph at log position {status.position} of {status.head} (lag {status.lag}); "
        f"{status.nodes} nodes, {status.edges} edges"
    )
    print_json_or_text(args, data, text)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """catch the Neo4j graph up to the log, once

    Bring the Neo4j graph up to the lineage projection, once: every window of log
    positions it does not hold yet, each written in one Neo4j transaction with the
    position it reaches."""
    with _opened(args) as (ledger, graph):
        before = graph.position()
        began = time.perf_counter()
        position = graph.sync(ledger)
        seconds = time.perf_counter() - began
    data = {"from": before, "position": position, "seconds": round(seconds, 3)}
    print_json_or_text(
        args, data, f"graph synced from log position {before} to {position} in {seconds:.2f} s"
    )
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    """delete the Neo4j graph and replay it from the start

    Delete the Neo4j graph and its position, and sync it from the start of the log.
    Prints the rebuilt graph's digest (SHA-256 of its canonical form) and the embedded
    networkx graph's; they must be the same: exit 3 when they differ."""
    from lineage.graph import canonical, graph_of
    from lineage.neo4j import lineage_head
    from registry.canonical import canonical_json

    with _opened(args) as (ledger, graph):
        began = time.perf_counter()
        graph.drop()
        position = graph.sync(ledger)
        seconds = time.perf_counter() - began
        # Both digests of the graph at one log position: writes (and syncs elsewhere)
        # may go on meanwhile, so the two are taken again until nothing moved between.
        steady = False
        for _ in range(_COMPARE_ATTEMPTS):
            with ledger.store.read() as conn:
                head = lineage_head(conn)
                embedded = _digest(canonical_json(canonical(graph_of(ledger).current(conn))))
            graph.sync(ledger)
            position = graph.position()
            ours = _digest(canonical_json(graph.canonical()))
            steady = position == head == graph.position()
            if steady:
                break
        status = graph.status(ledger)
    same = steady and ours == embedded
    data = {
        "position": position,
        "nodes": status.nodes,
        "edges": status.edges,
        "seconds": round(seconds, 3),
        "digest": ours,
        "embedded_digest": embedded,
        "same": same,
    }
    text = (
        f"graph rebuilt to log position {position} in {seconds:.2f} s: {status.nodes} nodes, "
        f"{status.edges} edges; digest {ours} "
        + (
            "(the same as the embedded graph's)"
            if same
            else f"DIFFERS from {embedded}"
            if steady
            else f"not compared: the log moved during each of {_COMPARE_ATTEMPTS} tries"
        )
    )
    print_json_or_text(args, data, text)
    return 0 if same else EXIT_DIFFERS


def cmd_follow(args: argparse.Namespace) -> int:
    """keep the Neo4j graph up to date until stopped

    Keep the Neo4j graph up to date until stopped (Ctrl-C, SIGTERM): catch it up every
    --interval seconds. While Neo4j cannot be reached it says so once on stderr and
    tries again; appends to the log never wait for it."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    from lineage.neo4j import follow

    with _opened(args) as (ledger, graph):
        follow(ledger, graph, stop, args.interval, say=lambda m: print(m, file=sys.stderr))
    return 0


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[Ledger, Neo4jGraph]]:
    """The ledger at ``--db`` and the graph ``--graph`` names."""
    from lineage.neo4j import from_settings
    from registry.assembly import open_ledger

    graph = from_settings(args.settings, args.graph)
    if graph is None:
        raise ConfigError(
            "no lineage graph named: expected --graph bolt://HOST:PORT or MLLEDGER_GRAPH"
        )
    ledger = open_ledger(args.db, create=False, settings=args.settings)
    try:
        yield ledger, graph
    finally:
        graph.close()
        ledger.close()


ACTIONS: tuple[Action, ...] = (
    ("status", cmd_status, (add_json,)),
    ("sync", cmd_sync, (add_json,)),
    ("rebuild", cmd_rebuild, (add_json,)),
    ("follow", cmd_follow, (_follow_options,)),
)


def run(args: argparse.Namespace) -> int:
    return {name: command for name, command, _ in ACTIONS}[args.graph_command](args)


def add_parser(sub: Any) -> None:
    """The ``graph`` command and its actions."""
    add_group(
        sub,
        "graph",
        help="the lineage graph in Neo4j: status, sync, rebuild, follow",
        description="The lineage graph's Neo4j projection (docs/neo4j.md): how far it is "
        "behind the log, catching it up once or continuously, and rebuilding it from the "
        "start. With MLLEDGER_GRAPH set, the lineage questions run on it.",
        dest="graph_command",
        actions=ACTIONS,
        first=(add_db, _graph_option),
    )
