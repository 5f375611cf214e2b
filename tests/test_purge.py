"""The physical purge: after deletes and in-place rewrites, the old bytes are gone from
every file the database wrote, and the rows that were kept are still found.

Each test plants thousands of rows with unique canary strings (vault entries'
ciphertext, nonce and subject; subject keys; record index and prediction index
text), checks that ``find_bytes`` finds them all (so the search can find
things), deletes or rewrites some of them (rows shrinking, growing, a
contiguous run deleted so pages merge), purges, and checks that the erased
canaries are found nowhere while the kept ones still are.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from audit.erasure.purge import PurgeBusy, PurgeReport, _Matcher, find_bytes, purge
from registry.errors import ConfigError
from registry.store import Store, opened
from tests.support.pgserver import PostgresServer

ROWS = 2_400
# Over PostgreSQL's TOAST threshold (about 2 kB) and random, so not compressed:
# these ciphertexts live in the TOAST table, where the search must reach.
TOASTED = 4_000
#: Every column planted: vault entry id, subject, nonce, ciphertext; subject key and its
#: wrapped key; record and its subject; prediction's record and output.
KINDS = ("EN", "SU", "NO", "CT", "SK", "WK", "RE", "RS", "PR", "OU")


@dataclass
class Canaries:
    """The planted strings: those an erasure removed and those it kept."""

    gone: list[bytes] = field(default_factory=list)
    kept: list[bytes] = field(default_factory=list)

    @property
    def every(self) -> list[bytes]:
        return self.gone + self.kept


def _c(kind: str, tag: str, i: int) -> str:
    # At most 32 characters: record and subject pseudonym columns are String(32).
    return f"{kind}-{tag}-{i:05d}"


def plant(store: Store, tag: str, rows: int = ROWS) -> None:
    """``rows`` rows in each table an erasure touches, every value a canary."""
    vault, keys, records, predictions = [], [], [], []
    for i in range(rows):
        size = TOASTED if i % 10 == 0 else 40
        vault.append(
            {
                "entry": _c("EN", tag, i),
                "subject": _c("SU", tag, i),
                "nonce": _c("NO", tag, i).encode(),
                "ct": _c("CT", tag, i).encode() + secrets.token_bytes(size),
            }
        )
        keys.append({"subject": _c("SK", tag, i), "wrapped": _c("WK", tag, i).encode()})
        records.append(
            {"dataset": f"ds-{i % 7}", "record": _c("RE", tag, i), "subject": _c("RS", tag, i)}
        )
        predictions.append(
            {"id": i, "record": _c("PR", tag, i), "output": _c("OU", tag, i) + "x" * (i % 60)}
        )
    with store.append_transaction() as conn:
        conn.execute(
            text(
                "INSERT INTO vault_entries (entry, project, subject, nonce, ciphertext, "
                "created_at) VALUES (:entry, 'p', :subject, :nonce, :ct, '2024-01-01')"
            ),
            vault,
        )
        conn.execute(
            text(
                "INSERT INTO subject_keys (project, subject, wrapped, created_at) "
                "VALUES ('p', :subject, :wrapped, '2024-01-01')"
            ),
            keys,
        )
        conn.execute(
            text(
                "INSERT INTO record_index (dataset, record, project, subject, position) "
                "VALUES (:dataset, :record, 'p', :subject, 0)"
            ),
            records,
        )
        conn.execute(
            text(
                "INSERT INTO prediction_index (id, position, seq, epoch, project, record, "
                "deployment, model, at, output, trace_id) VALUES (:id, 0, 0, 0, 'p', :record, "
                "'d', 'm', '2024-01-01', :output, NULL)"
            ),
            predictions,
        )


def erase(store: Store, tag: str, rows: int = ROWS) -> Canaries:
    """Delete a quarter of the rows and a contiguous run (pages empty and merge),
    shrink a quarter, grow a quarter (rows move, pages split); the canaries each left."""
    out = Canaries()
    run = range(rows // 2, rows // 2 + 300)

    def c(kinds: str, i: int) -> list[bytes]:
        return [_c(kind, tag, i).encode() for kind in kinds.split()]

    with store.append_transaction() as conn:
        for i in range(rows):
            op = i % 4
            if op == 0 or i in run:
                _delete(conn, tag, i)
                out.gone += c("EN SU NO CT SK WK RE RS PR OU", i)
            elif op == 1:
                conn.execute(
                    text(
                        "UPDATE vault_entries SET ciphertext = :ct, nonce = :n, "
                        "subject = 'shrunk' WHERE entry = :e"
                    ),
                    {"ct": b"x", "n": b"n", "e": _c("EN", tag, i)},
                )
                conn.execute(
                    text("UPDATE record_index SET subject = NULL WHERE record = :r"),
                    {"r": _c("RE", tag, i)},
                )
                conn.execute(
                    text("UPDATE prediction_index SET output = '' WHERE id = :i"), {"i": i}
                )
                out.gone += c("SU NO CT RS OU", i)
                out.kept += c("EN SK WK RE PR", i)
            elif op == 2:
                conn.execute(
                    text(
                        "UPDATE vault_entries SET ciphertext = :ct, subject = :s WHERE entry = :e"
                    ),
                    {
                        "ct": secrets.token_bytes(3_000),
                        "s": f"grown-{i:026d}",
                        "e": _c("EN", tag, i),
                    },
                )
                conn.execute(
                    text("UPDATE prediction_index SET output = :o WHERE id = :i"),
                    {"o": "y" * 700, "i": i},
                )
                out.gone += c("SU CT OU", i)
                out.kept += c("EN NO SK WK RE RS PR", i)
            else:
                out.kept += c("EN SU NO CT SK WK RE RS PR OU", i)
    return out


def _delete(conn: Connection, tag: str, i: int) -> None:
    conn.execute(text("DELETE FROM vault_entries WHERE entry = :e"), {"e": _c("EN", tag, i)})
    conn.execute(text("DELETE FROM subject_keys WHERE subject = :s"), {"s": _c("SK", tag, i)})
    conn.execute(text("DELETE FROM record_index WHERE record = :r"), {"r": _c("RE", tag, i)})
    conn.execute(text("DELETE FROM prediction_index WHERE id = :i"), {"i": i})


def found(store: Store, needles: list[bytes]) -> dict[bytes, list[str]]:
    """The needles found somewhere, with where."""
    return {n: where for n, where in find_bytes(store, needles).items() if where}


def assert_purged(store: Store, canaries: Canaries) -> None:
    hits = found(store, canaries.every)
    left = {n: hits[n] for n in canaries.gone if n in hits}
    assert left == {}, f"{len(left)} erased values still stored, e.g. {list(left.items())[:3]}"
    missing = [n for n in canaries.kept if n not in hits]
    assert missing == [], f"{len(missing)} kept values not found: the search is broken"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with opened(store_url) as opened_store:
        yield opened_store


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


# --- both backends ----------------------------------------------------------------------


def test_purge_removes_deleted_and_rewritten_bytes(store: Store, tag: str) -> None:
    plant(store, tag)
    if store.dialect == "postgresql":
        # Statistics hold samples of column values: the purge must clear them too.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE vault_entries, record_index, prediction_index"))
    planted = [_c(k, tag, i).encode() for i in range(ROWS) for k in KINDS]
    before = found(store, planted)
    assert len(before) == len(planted), "the search must find every planted value"
    if store.dialect == "postgresql":
        places = {where for names in before.values() for where in names}
        for relation in ("pg_toast.", "ix_record_index_record", "ix_vault_entries_subject"):
            assert any(relation in p for p in places), f"nothing found in {relation}"
        # pg_statistic (oid 2619) or its TOAST table holds ANALYZE's samples.
        assert any("pg_statistic" in p or "pg_toast_2619" in p for p in places)

    canaries = erase(store, tag)
    report = purge(store)

    assert_purged(store, canaries)
    as_dict = report.as_dict()
    json.dumps(as_dict)
    assert as_dict["method"] == report.method and report.seconds >= 0
    if store.dialect == "postgresql":
        for table in ("vault_entries", "subject_keys", "record_index", "prediction_index"):
            assert table in report.tables
        assert report.details["dead_rows_kept"]["vault_entries"] == 0
        assert "pg_statistic" in report.details["vacuum_seconds"]
    else:
        assert "vault_entries" in report.tables
        assert report.details["bytes_after"].get("ledger.db-wal", 0) == 0


def test_a_purge_of_a_clean_store_changes_nothing(store: Store, tag: str) -> None:
    plant(store, tag, rows=200)
    needles = [_c(k, tag, i).encode() for i in range(200) for k in KINDS]
    purge(store)
    purge(store)
    assert len(found(store, needles)) == len(needles)


# --- the search itself ------------------------------------------------------------------


def test_the_matcher_finds_needles_across_chunk_boundaries() -> None:
    needles = [b"abcdef", b"abcxyz", b"zz", b"\x00\x01\x02\x03\x04", b"nowhere"]
    data = b"..abcde" + b"f.." + b"abcx" + b"yz\x00\x01" + b"\x02\x03\x04" + b"z" + b"z"
    chunks = [data[i : i + 3] for i in range(0, len(data), 3)]
    assert _Matcher(needles).scan(chunks) == set(needles) - {b"nowhere"}
    assert _Matcher(needles).scan([data]) == set(needles) - {b"nowhere"}
    with pytest.raises(ValueError):
        _Matcher([b""])
    with pytest.raises(ValueError):
        _Matcher([])


# --- SQLite -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with opened(f"sqlite:///{tmp_path}/ledger.db") as opened_store:
        yield opened_store


def test_sqlite_vacuum_purges_even_without_secure_delete(sqlite_store: Store, tag: str) -> None:
    """VACUUM alone rebuilds the file from live rows: with ``secure_delete`` off, the
    deleted values are plainly in the files before the purge and nowhere after."""

    @event.listens_for(sqlite_store.engine, "connect")
    def _off(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA secure_delete=OFF")

    sqlite_store.engine.dispose()
    plant(sqlite_store, tag)
    canaries = erase(sqlite_store, tag)
    assert len(found(sqlite_store, canaries.gone)) > len(canaries.gone) // 2

    report = purge(sqlite_store)

    assert report.details["secure_delete"] == 0
    assert_purged(sqlite_store, canaries)


def purge_once_released(store: Store, release: Callable[[], object]) -> PurgeReport:
    """A purge that waits (up to 20 s) for a reader, which ``release`` ends 0.6 s on."""
    timer = threading.Timer(0.6, release)
    timer.start()
    try:
        return purge(store, busy_seconds=20)
    finally:
        timer.join()


def test_sqlite_purge_waits_for_a_reader_then_says_busy(
    sqlite_store: Store, tag: str, tmp_path: Path
) -> None:
    plant(sqlite_store, tag, rows=600)
    canaries = erase(sqlite_store, tag, rows=600)
    reader = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM vault_entries").fetchone()  # holds a snapshot

    with pytest.raises(PurgeBusy, match=r"in use for 0\.5 s.*retry"):
        purge(sqlite_store, busy_seconds=0.5)

    # The reader finishes while the purge waits: the purge completes.
    try:
        report = purge_once_released(sqlite_store, reader.rollback)
    finally:
        reader.close()
    assert report.details["checkpoint_before"]["waited_seconds"] >= 0.4
    assert report.details["checkpoint_before"]["attempts"] > 1
    assert_purged(sqlite_store, canaries)


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_store(pg_server: PostgresServer) -> Iterator[Store]:
    url = pg_server.create_database()
    try:
        with opened(url) as opened_store:
            yield opened_store
    finally:
        pg_server.drop_database(url.rsplit("/", 1)[1])


@pytest.mark.postgres
def test_postgres_search_reads_the_same_through_files_and_sql(pg_store: Store, tag: str) -> None:
    plant(pg_store, tag, rows=300)
    needles = [_c(k, tag, i).encode() for i in range(300) for k in KINDS] + [
        b"absent-" + tag.encode()
    ]
    by_files = find_bytes(pg_store, needles, via="files")
    by_sql = find_bytes(pg_store, needles, via="sql")
    assert by_files == by_sql
    assert by_files[needles[-1]] == []
    assert all(by_files[n] for n in needles[:-1])


@pytest.mark.postgres
def test_postgres_purge_waits_for_older_snapshots(pg_store: Store, tag: str) -> None:
    """A transaction whose snapshot predates the erasure may still read the erased rows:
    VACUUM FULL would copy them into the new files. The purge waits for it, then
    refuses; once it ends, the purge completes."""
    plant(pg_store, tag, rows=600)
    raw = pg_store.engine.raw_connection()
    old = raw.driver_connection
    assert old is not None
    try:
        old.isolation_level = 3  # REPEATABLE READ: one snapshot for the whole transaction
        old.execute("SELECT count(*) FROM subject_keys").fetchone()
        canaries = erase(pg_store, tag, rows=600)
        with pytest.raises(PurgeBusy, match=r"backend \d+ \(client backend"):
            purge(pg_store, busy_seconds=0.5)
        report = purge_once_released(pg_store, old.rollback)
    finally:
        raw.close()
    assert report.details["waited_seconds"] >= 0.4
    assert_purged(pg_store, canaries)


@pytest.mark.postgres
def test_postgres_purge_of_named_tables(pg_store: Store) -> None:
    report = purge(pg_store, ["record_index"])
    assert report.tables == ["record_index"]
    assert set(report.details["vacuum_seconds"]) >= {"record_index", "pg_statistic"}
    with pytest.raises(ConfigError, match="no such table 'nope'"):
        purge(pg_store, ["record_index", "nope"])
