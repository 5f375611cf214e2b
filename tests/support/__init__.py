"""Shared test support: servers the tests start, child-process writers, world builders.

Test modules import from here and never from each other:

- ``apiserver``: an ``mlledger serve`` child process on a free port.
- ``pgserver``: a throwaway PostgreSQL server in a temporary directory.
- ``crashwriter`` / ``erasecrasher``: processes the crash tests kill mid-write.
- ``worlds``: ledgers filled with a known scenario (projects, runs, datasets, subjects).
- ``events``: events built by hand and appended behind the service layer's back.
"""
