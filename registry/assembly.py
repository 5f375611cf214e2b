"""The composition root: the one place the ledger is built with the projections and
rules of the layers above its core.

The core (``registry.ledger``) knows projections and append rules only by their
interfaces. ``lineage`` owns the catalogue, the indexes, the lineage edges and the
erasure tables; ``audit`` owns the Merkle tree and the rule that a model version
resolving an erasure's flag trained on none of the erased data. Every command, the
SDK and the server open their ledger here.
"""

from __future__ import annotations

from audit import tree
from audit.erasure.rules import check_remediation
from lineage import projections
from registry.ledger import Ledger, Rule
from registry.projection import Projection
from registry.settings import Settings, given, normalise_url
from registry.store import Store, open_store
from registry.vault import KeyRing

#: Every projection, in the order they apply.
PROJECTIONS: tuple[Projection, ...] = (*projections.PROJECTIONS, *tree.PROJECTIONS)
#: Rules an event type's events must pass once their batch is projected.
RULES: dict[str, tuple[Rule, ...]] = {"erasure-remediated": (check_remediation,)}


def assemble(
    store: Store, keyring: KeyRing | None = None, settings: Settings | None = None
) -> Ledger:
    """The ledger over ``store`` with every projection and rule."""
    return Ledger(store, keyring, projections=PROJECTIONS, rules=RULES, settings=settings)


def open_ledger(
    url: str | None = None, *, create: bool = True, settings: Settings | None = None
) -> Ledger:
    """Open the ledger at ``url`` (the settings' ``db``: ``MLLEDGER_DB`` or the default
    SQLite file); with ``create=False``, raise ``NoLedger`` rather than create one there.
    ``settings`` stand in for the ``MLLEDGER_*`` environment, read once when not given."""
    settings = given(settings)
    return assemble(open_store(normalise_url(url, settings), create=create), None, settings)
