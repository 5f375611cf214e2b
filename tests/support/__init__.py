"""Shared test support: servers the tests start, child-process writers, world builders.

Test modules import from here and never from each other:

- ``apiserver``: an ``mlledger serve`` child process on a free port.
- ``pgserver``: a throwaway PostgreSQL server in a temporary directory.
- ``crashwriter`` / ``erasecrasher``: processes the crash tests kill mid-write.
- ``worlds``: ledgers filled with a known scenario (projects, runs, datasets, subjects).
- ``events``: events built by hand, and writes made behind the service layer's back.
- ``checks``: whole-ledger checks of the multi-process tests (trail, projections).
- ``shop``: the erasure commands' world, and ``mlledger`` run as a process on it.
- ``helpers``: the CLI in-process, the newest event, the ledger's signing key, a
  signed log, the shape of a one-line CLI error.
"""
