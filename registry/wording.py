"""Counting in words: every command's text and the reports say "1 run", "2 runs"."""

from __future__ import annotations


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """The form of a noun that goes with the count ``n``: ``singular`` for 1, else
    ``plural`` (by default ``singular`` + "s")."""
    return singular if n == 1 else plural or singular + "s"


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and its noun: ``counted(1, "vault entry", "vault entries")`` is "1 vault
    entry", ``counted(2, "run")`` "2 runs"."""
    return f"{n} {noun(n, singular, plural)}"
