"""The prediction filters (a Bloom filter per epoch of the prediction index), on SQLite
and PostgreSQL: a lookup by record that seeks only the epochs whose filter may hold the
record answers exactly what a scan of the whole index finds, with false positives, after
an erasure, after a rebuild seen by another ledger's cache, and on a store from before
the filters.

Epochs are made small (``EPOCH_ROWS`` patched) so that a few hundred predictions fill
dozens of them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

import lineage.projections
from lineage import prediction_filters
from lineage.prediction_filters import FilterCache, cache_of, filter_words, record_key, record_keys
from registry import Deployment, ModelVersion, Registry
from registry.assembly import open_ledger
from registry.events import StoredEvent
from registry.ledger import Ledger
from registry.store.raw import Raw
from tests.support.worlds import personal_dataset

EPOCH_ROWS = 16
KEYS = [f"customer-{i}" for i in range(40)]
SUBJECTS = [f"person-{i % 10}" for i in range(40)]


@pytest.fixture(autouse=True)
def small_epochs(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(lineage.projections, "EPOCH_ROWS", EPOCH_ROWS)
    return EPOCH_ROWS


def serving(reg: Registry) -> tuple[Deployment, ModelVersion]:
    """A model version deployed, and the records of ``KEYS`` in a dataset of subjects."""
    personal_dataset(reg, "customers", KEYS, SUBJECTS)
    with reg.run("train") as run:
        model = run.register_model(
            "scorer", artifact_digest="sha256:" + "ab" * 32, artifact_uri="file:///m/scorer"
        )
    return reg.deploy("scoring", endpoint="http://127.0.0.1/score", served={model: 100}), model


def log_batches(
    reg: Registry, deployment: Deployment, model: ModelVersion, batches: int, seed: int = 1
) -> None:
    """``batches`` batches of 1 to 30 predictions of keys drawn from ``KEYS``, each
    asserted as the event it appended."""
    rng = random.Random(seed)
    for call in range(batches):
        size = rng.randint(1, 30)
        records = [rng.choice(KEYS) for _ in range(size)]
        outputs = [round(rng.random(), 3) for _ in range(size)]
        traces = [f"{call:04x}-{i}" for i in range(size)]
        positions = reg.log_predictions(
            deployment, model=model, records=records, outputs=outputs, trace_ids=traces
        )
        event = reg.ledger.last_event()
        assert event is not None and event.type == "predictions-logged"
        assert event.position == positions[-1]


def scanned(ledger: Ledger, key: str) -> list[tuple[Any, ...]]:
    """Every prediction of record ``key`` found by reading the whole index, no filter."""
    pseudonym = ledger.pseudonymizer("test").record(key)
    with ledger.store.read() as conn:
        rows = Raw(conn).all(
            "SELECT deployment, model, at, output, trace_id, position FROM prediction_index "
            "WHERE project = ? AND record = ? ORDER BY at, position, seq",
            ("test", pseudonym),
        )
    return [(d, m, at, json.loads(o), t, int(p)) for d, m, at, o, t, p in rows]


def held_epochs(ledger: Ledger, key: str) -> set[int]:
    """The epochs holding predictions of record ``key``, read from the index itself."""
    pseudonym = ledger.pseudonymizer("test").record(key)
    with ledger.store.read() as conn:
        return {int(e) for (e,) in Raw(conn).all(
            "SELECT DISTINCT epoch FROM prediction_index WHERE project = ? AND record = ?",
            ("test", pseudonym))}  # fmt: skip


def answered(reg: Registry, key: str) -> list[tuple[Any, ...]]:
    return [
        (p["deployment"], p["model"], p["at"], p["output"], p["trace_id"], p["position"])
        for p in reg.scored(key)["predictions"]
    ]


def epochs(ledger: Ledger) -> int:
    with ledger.store.read() as conn:
        return int(Raw(conn).scalar("SELECT MAX(epoch) FROM prediction_index")) + 1


def filters(ledger: Ledger) -> dict[int, bytes]:
    with ledger.store.read() as conn:
        return {
            int(e): bytes(b)
            for e, b in Raw(conn).all("SELECT epoch, bits FROM prediction_filters ORDER BY epoch")
        }


def state(ledger: Ledger) -> tuple[int, int]:
    """(generation, unfiltered) of the filters."""
    with ledger.store.read() as conn:
        row = Raw(conn).one("SELECT generation, unfiltered FROM prediction_filter_state")
    return int(row[0]), int(row[1])


def sought(ledger: Ledger, key: str) -> list[int]:
    """The epochs a lookup of ``key`` seeks, through the ledger's cache."""
    pseudonym = ledger.pseudonymizer("test").record(key)
    with ledger.store.read() as conn:
        return cache_of(ledger.store).epochs(Raw(conn), "test", [pseudonym])


@pytest.fixture
def other(reg: Registry) -> Iterator[Ledger]:
    """A second ledger on the same store, with a filter cache of its own."""
    with closing(open_ledger(reg.ledger.store.url)) as ledger:
        yield ledger


# --- the layout ------------------------------------------------------------------------


def test_a_full_epoch_gets_64_kib_and_small_ones_a_power_of_two() -> None:
    assert filter_words(50_000) == 8192  # 10.5 bits a row
    assert [filter_words(n) for n in (1, 6, 7, 16, 100)] == [1, 1, 2, 4, 16]


def test_keys_in_one_pass_equal_keys_one_by_one() -> None:
    rng = random.Random(7)
    pseudonyms = [rng.randbytes(16).hex() for _ in range(50)]
    assert list(record_keys(pseudonyms)) == [record_key(p) for p in pseudonyms]
    assert record_key(pseudonyms[0]) == int.from_bytes(bytes.fromhex(pseudonyms[0])[:8], "little")
    # Anything else (short, not hex, 32 characters with a space) goes through a hash,
    # and a batch mixing them still agrees with the keys one by one.
    odd = ["r1", "x" * 32, pseudonyms[1][:31] + " ", pseudonyms[2].upper()]
    mixed = [*pseudonyms[:3], *odd]
    assert list(record_keys(mixed)) == [record_key(p) for p in mixed]
    assert record_key(pseudonyms[2].upper()) == record_key(pseudonyms[2])
    assert len({record_key(r) for r in odd}) == 4


def reference_filter(size: int, project: str, records: list[str]) -> list[int]:
    """The filter's words, computed key by key in plain Python."""
    words = [0] * size
    patterns, mix = prediction_filters._patterns(), prediction_filters.project_mix(project)
    for record in records:
        key = record_key(record) ^ mix
        words[key % size] |= patterns[(key >> 32) & 0xFFFF]
    return words


def test_a_filter_written_at_once_equals_one_written_key_by_key() -> None:
    rng = random.Random(5)
    pseudonyms = [rng.randbytes(16).hex() for _ in range(3_000)]
    for records in (pseudonyms, [*pseudonyms[:100], "r1", "x" * 32]):
        words = np.zeros(filter_words(3_000), "<u8")
        prediction_filters._set(words, "p", records)
        assert words.tolist() == reference_filter(len(words), "p", records)


def test_a_filter_holds_every_key_added_and_few_others() -> None:
    rng = random.Random(3)
    size = filter_words(5_000)
    held = [rng.randbytes(16).hex() for _ in range(5_000)]
    words = reference_filter(size, "p", held)
    patterns = prediction_filters._patterns()
    assert len(set(patterns)) > 60_000
    assert all(bin(p).count("1") == 6 for p in patterns)

    def maybe(record: str) -> bool:
        key = record_key(record) ^ prediction_filters.project_mix("p")
        pattern = patterns[(key >> 32) & 0xFFFF]
        return words[key % size] & pattern == pattern

    assert all(maybe(r) for r in held)
    others = [rng.randbytes(16).hex() for _ in range(20_000)]
    assert sum(map(maybe, others)) < 0.03 * len(others)
    # The same pseudonym in another project is another key.
    assert prediction_filters.project_mix("p") != prediction_filters.project_mix("q")


# --- lookups ---------------------------------------------------------------------------


def test_scored_answers_what_a_full_scan_finds_in_dozens_of_epochs(
    reg: Registry, other: Ledger
) -> None:
    deployment, model = serving(reg)
    log_batches(reg, deployment, model, 40)
    ledger = reg.ledger
    count = epochs(ledger)
    assert count >= 25
    # Every epoch has its filter, written with the rows; none is missing.
    assert sorted(filters(ledger)) == list(range(count))
    assert state(ledger) == (0, 0)
    for key in KEYS:
        assert answered(reg, key) == scanned(ledger, key), key
    # The filters do leave epochs out: a record seeks only some, always the newest.
    seeks = [sought(ledger, key) for key in KEYS]
    assert all(s[-1] == count - 1 for s in seeks)
    assert sum(map(len, seeks)) < 0.5 * count * len(KEYS)
    # A never-logged record seeks the newest epoch and the rare false positive.
    assert sought(ledger, "never-logged")[-1] == count - 1

    # More predictions: sealed epochs join the cache, and both ledgers agree.
    log_batches(reg, deployment, model, 20, seed=2)
    assert epochs(ledger) > count
    with closing(Registry(other, project="test", actor="tester")) as seen_by_other:
        for key in KEYS:
            expected = scanned(ledger, key)
            assert answered(reg, key) == expected
            assert answered(seen_by_other, key) == expected


def test_false_positives_cost_seeks_never_answers(reg: Registry, other: Ledger) -> None:
    deployment, model = serving(reg)
    log_batches(reg, deployment, model, 30)
    expected = {key: scanned(reg.ledger, key) for key in KEYS}
    # Every filter saying "maybe" to everything: every epoch is sought, same answers.
    with reg.ledger.store.append_transaction() as conn:
        for epoch, bits in filters(reg.ledger).items():
            Raw(conn).run(
                "UPDATE prediction_filters SET bits = ? WHERE epoch = ?",
                (b"\xff" * len(bits), epoch),
            )
    with closing(Registry(other, project="test", actor="tester")) as fresh:
        assert sought(other, KEYS[0]) == list(range(epochs(other)))
        assert {key: answered(fresh, key) for key in KEYS} == expected


def test_after_an_erasure_the_filters_hold_what_remains_and_answers_exact(
    reg: Registry, last_event: Callable[[], StoredEvent], ledger: Ledger, other: Ledger
) -> None:
    """An erasure writes again the filters of the epochs it took rows from: none still
    tells which epochs held an erased record (and so roughly when it was scored), in
    this process or in another whose cache was warm."""
    deployment, model = serving(reg)
    log_batches(reg, deployment, model, 40)
    before = filters(ledger)
    kept = {key: scanned(ledger, key) for key, s in zip(KEYS, SUBJECTS, strict=True)}
    gone = [k for k, s in zip(KEYS, SUBJECTS, strict=True) if s == "person-3"]
    last = epochs(ledger) - 1
    held = {k: held_epochs(ledger, k) - {last} for k in gone}
    for key in KEYS:
        answered(reg, key)  # the caches are warm before the erasure
        sought(other, key)
    generation = state(ledger)[0]

    outcome = reg.erase("person-3")

    erased = last_event()
    assert (erased.type, erased.position) == ("subject-erased", outcome["erased_position"])
    assert erased.body["records"] == len(gone)
    assert erased.body["predictions"] == sum(len(kept[k]) for k in gone) > 0
    after = filters(ledger)
    assert after.keys() == before.keys() and after != before
    assert state(ledger)[0] == generation + 1
    with ledger.store.read() as conn:
        for epoch, bits in after.items():
            remaining = [r for (r,) in Raw(conn).all(
                "SELECT record FROM prediction_index WHERE epoch = ? AND project = 'test'",
                (epoch,))]  # fmt: skip
            words = reference_filter(len(bits) // 8, "test", remaining)
            assert bits == np.array(words, "<u8").tobytes(), epoch
    for key in gone:
        assert held[key]  # the record was in sealed epochs ...
        for view in (ledger, other):  # ... which no filter names any more
            assert not held[key] <= set(sought(view, key)), key
    for key in KEYS:
        answer = reg.scored(key)
        if key in gone:
            assert answer["times_scored"] == 0 and answer["erased"] is not None
            assert scanned(ledger, key) == []
        else:
            assert answered(reg, key) == kept[key] == scanned(ledger, key)


def test_a_rebuild_is_seen_by_another_ledgers_cache(
    reg: Registry, other: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment, model = serving(reg)
    log_batches(reg, deployment, model, 40)
    with closing(Registry(other, project="test", actor="tester")) as theirs:
        for key in KEYS:
            answered(theirs, key)  # the other ledger caches every sealed epoch
        generation = cache_of(other.store).generation
        assert generation == state(reg.ledger)[0] == 0

        # Replayed with epochs of another size: every row changes epoch, so a stale
        # cache would send lookups to the wrong ones.
        monkeypatch.setattr(lineage.projections, "EPOCH_ROWS", 7)
        result = reg.ledger.rebuild()

        assert result["events"] == reg.ledger.head() + 1
        assert state(reg.ledger) == (1, 0)
        assert epochs(reg.ledger) > 50
        assert sorted(filters(reg.ledger)) == list(range(epochs(reg.ledger)))
        for key in KEYS:
            expected = scanned(reg.ledger, key)
            assert answered(theirs, key) == expected
            assert answered(reg, key) == expected
        assert cache_of(other.store).generation == 1
        assert cache_of(other.store).words == filter_words(7)


def test_the_subject_footprint_and_report_find_every_prediction(reg: Registry) -> None:
    deployment, model = serving(reg)
    log_batches(reg, deployment, model, 40)
    held = [k for k, s in zip(KEYS, SUBJECTS, strict=True) if s == "person-4"]
    expected = sorted(
        (f"record:test/{reg.ledger.pseudonymizer('test').record(k)}", row[5])
        for k in held
        for row in scanned(reg.ledger, k)
    )
    footprint = reg.footprint("person-4")
    assert sorted((p["record"], p["position"]) for p in footprint["predictions"]) == expected
    from audit.reports.subject import subject_report

    report = subject_report(reg.ledger, "test", "person-4")
    assert sorted((p["record"], p["position"]) for p in report["predictions"]) == expected


# --- a store from before the filters -------------------------------------------------------


def test_a_store_from_before_the_filters_answers_then_fills_them_in(
    reg: Registry, other: Ledger
) -> None:
    deployment, model = serving(reg)
    log_batches(reg, deployment, model, 40)
    url = reg.ledger.store.url
    written = filters(reg.ledger)
    count = epochs(reg.ledger)
    # Back to revision 0007: the same store without the filters' tables.
    with reg.ledger.store.append_transaction() as conn:
        conn.execute(text("DROP TABLE web_sessions"))  # revision 0009
        conn.execute(text("DROP TABLE prediction_days"))  # revision 0010
        conn.execute(text("DROP TABLE prediction_filters"))
        conn.execute(text("DROP TABLE prediction_filter_state"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))

    with closing(open_ledger(url)) as upgraded:
        # The migration counted every epoch as unfiltered, and wrote no filter.
        assert state(upgraded) == (0, count)
        assert filters(upgraded) == {}
        with closing(Registry(upgraded, project="test", actor="tester")) as fresh:
            assert sought(upgraded, KEYS[0]) == list(range(count))
            for key in KEYS:
                assert answered(fresh, key) == scanned(upgraded, key)
            # Each batch writes the filters of the epochs it fills and one older one.
            log_batches(fresh, deployment, model, 1, seed=3)
            generation, unfiltered = state(upgraded)
            assert (generation, unfiltered) == (0, count - 1)
            while unfiltered:
                log_batches(fresh, deployment, model, 1, seed=4 + unfiltered)
                generation, unfiltered = state(upgraded)
            # The last one bumps the generation: the stand-ins cached are dropped.
            assert generation == 1
            now = filters(upgraded)
            assert sorted(now) == list(range(epochs(upgraded)))
            # Written from the stored rows, they equal those written batch by batch.
            sealed = [e for e in written if e < count - 1]
            assert {e: now[e] for e in sealed} == {e: written[e] for e in sealed}
            for key in KEYS:
                assert answered(fresh, key) == scanned(upgraded, key)
            assert len(sought(upgraded, KEYS[0])) < epochs(upgraded)


def test_the_cache_of_a_store_without_predictions_seeks_nothing(ledger: Ledger) -> None:
    with ledger.store.read() as conn:
        assert FilterCache().epochs(Raw(conn), "test", ["00" * 16]) == []


def test_an_erasure_on_a_store_from_before_the_filters_leaves_nothing(reg: Registry) -> None:
    deployment, model = serving(reg)
    log_batches(reg, deployment, model, 40)
    held = [k for k, s in zip(KEYS, SUBJECTS, strict=True) if s == "person-7"]
    expected = sum(len(scanned(reg.ledger, k)) for k in held)
    assert expected > 0
    with reg.ledger.store.append_transaction() as conn:
        conn.execute(text("DROP TABLE web_sessions"))  # revision 0009
        conn.execute(text("DROP TABLE prediction_days"))  # revision 0010
        conn.execute(text("DROP TABLE prediction_filters"))
        conn.execute(text("DROP TABLE prediction_filter_state"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))

    upgraded = open_ledger(reg.ledger.store.url)
    with closing(Registry(upgraded, project="test", actor="tester")) as fresh:
        assert filters(upgraded) == {}
        outcome = fresh.erase("person-7")
        erased = upgraded.last_event()
        assert erased is not None and erased.type == "subject-erased"
        assert erased.position == outcome["erased_position"]
        # Every epoch was sought (none had a filter): every prediction is gone.
        assert erased.body["predictions"] == expected
        assert all(scanned(upgraded, k) == [] for k in held)
        assert all(fresh.scored(k)["times_scored"] == 0 for k in held)
