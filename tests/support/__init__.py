"""Shared test support: servers the tests start, child-process writers, world builders.

Test modules import from here and never from each other:

- ``apiserver``: an ``mlledger serve`` child process on a free port (``serving()``
  for a fixture to ``yield from``).
- ``pgserver``: a throwaway PostgreSQL server in a temporary directory.
- ``crashwriter`` / ``erasecrasher``: processes the crash tests kill mid-write, and
  the crash tests' trail entries.
- ``worlds``: ledgers filled with a known scenario (projects, runs, datasets, subjects),
  and ``personal_dataset``, a dataset whose records belong to data subjects.
- ``events``: events and access-trail entries built by hand, writes made behind the
  service layer's back, and transactions on a store at an old schema revision.
- ``checks``: whole-ledger checks of the multi-process tests (trail, projections).
- ``shop``: the erasure commands' world, and ``mlledger`` run as a process on it.
- ``helpers``: the CLI in-process and as a child process (``mlledger_process``),
  connections and ledgers for fixtures to ``yield from``, a ledger's head, the newest
  event, the ledger's signing key, a signed log, the shape of a one-line CLI error.
"""
