"""Which partitions of the prediction index may hold a record: a Bloom filter per epoch.

The prediction index is partitioned by ``epoch`` (every EPOCH_ROWS predictions) so that
a commit touches only the newest partition's index pages, however many came before.
A lookup by record must then ask every partition: 200 index seeks at 10,000,000
predictions. Each epoch's filter of the (project, record) keys it holds
(``prediction_filters``, written in the transaction of the rows it covers) lets a
lookup seek only the epochs whose filter says "maybe", so its cost follows what one
record has, not the size of the index.

Layout: a *blocked* Bloom filter, one 64-bit word per key.

- An epoch's filter is ``filter_words(EPOCH_ROWS)`` 64-bit little-endian words, a power
  of two giving about ``BITS_PER_ROW`` bits per row of a full epoch (8,192 words, 64 KiB,
  for 50,000 rows); a filter's size is its length, so one written for another epoch size
  still reads right.
- A key is the record pseudonym's first 8 bytes read little-endian, XORed with 64 bits
  of the project's BLAKE2b. A pseudonym is a keyed HMAC, already uniformly random: no
  hashing per row. Any other text goes through BLAKE2b first.
- The key's low bits choose the word; bits 32 to 47 choose one of 65,536 fixed patterns
  of six bits (``_patterns``), every one of which must be set for "maybe". At 10.5 bits
  a row a full epoch answers "maybe" for about 2 keys in 100 it does not hold.
- A key has the same word in every epoch's filter, so a probe over every epoch reads
  one strided column of the cached filters: one slice in C, then one test per epoch.

Filters only gain bits while their epoch is the newest. An erasure writes the
filters of the epochs it took rows from again from what they still hold
(``rewrite``): a filter left as it was would still tell, to anyone holding the
record key and the project's secret, which epochs held the erased record, and so
roughly when it was scored. A rebuild writes them all again from the redacted log.
A sealed epoch's filter changes only then, or when the last of the epochs indexed
before there were filters gets one (``backfill``, one a batch of predictions); each
bumps ``prediction_filter_state.generation``. A process keeps every sealed epoch's filter
(``FilterCache``; an epoch without one stands in as all ones, "maybe") until it reads
another generation, and always seeks the newest epoch, whose filter is still filling.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import weakref
from array import array
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from registry.lazy import lazy_import
from registry.store.raw import Raw

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_import("numpy")  # loaded with pyarrow by the write path; lookups need neither

#: Filter bits per row of a full epoch (rounded up to a power of two words).
BITS_PER_ROW = 10
#: Bits of the key that choose the pattern: 16 from bit 32 (the word takes the low bits).
_PATTERN_SHIFT = 32
_PATTERN_MASK = 0xFFFF
_ALL_ONES = 0xFFFF_FFFF_FFFF_FFFF
_PSEUDONYM = re.compile(r"[0-9a-fA-F]{32}")
_BIG_ENDIAN = sys.byteorder == "big"


def filter_words(epoch_rows: int) -> int:
    """64-bit words in the filter of an epoch of ``epoch_rows`` rows (a power of two)."""
    needed = max(1, -(-epoch_rows * BITS_PER_ROW // 64))
    return 1 << (needed - 1).bit_length()


@cache
def _patterns() -> list[int]:
    """The 65,536 bit patterns a key can set in its word: three bits of the word's low
    half (one of 256 such triples) and three of its high half. Fixed forever: the
    stored filters depend on them."""
    halves: list[list[int]] = []
    for offset, side in ((0, b"lo"), (32, b"hi")):
        half = []
        for i in range(256):
            digest = hashlib.blake2b(side + bytes([i]), digest_size=32).digest()
            bits: list[int] = []
            for byte in digest:
                if byte & 31 not in bits:
                    bits.append(byte & 31)
                if len(bits) == 3:
                    break
            half.append(sum(1 << (offset + b) for b in bits))
        halves.append(half)
    low, high = halves
    return [low[i & 0xFF] | high[i >> 8] for i in range(1 << 16)]


@cache
def project_mix(project: str) -> int:
    """64 bits of the project, XORed into its keys: the same pseudonym in two projects
    lands elsewhere."""
    return int.from_bytes(hashlib.blake2b(project.encode(), digest_size=8).digest(), "little")


def record_key(record: str) -> int:
    """The 64-bit key of one record pseudonym (before the project's mix)."""
    if _PSEUDONYM.fullmatch(record):
        raw = bytes.fromhex(record)
    else:
        raw = hashlib.blake2b(record.encode(), digest_size=16).digest()
    return int.from_bytes(raw[:8], "little")


def _packed(records: Sequence[str]) -> bytes | None:
    """The bytes of ``records`` one after another when all are 32 hex digits (the
    pseudonyms the ledger writes), converted in one pass in C; else None."""
    if not records or set(map(len, records)) != {32}:
        return None
    try:
        raw = bytes.fromhex("".join(records))
    except ValueError:
        return None
    # Every character a hex digit (whitespace, which fromhex skips, would shorten it).
    return raw if len(raw) == 16 * len(records) else None


def record_keys(records: Sequence[str]) -> Iterable[int]:
    """``record_key`` of each record: in one pass in C when all are pseudonyms."""
    raw = _packed(records)
    if raw is None:
        return [record_key(r) for r in records]
    words = array("Q")
    words.frombytes(raw)
    if _BIG_ENDIAN:
        words.byteswap()
    return words[::2]


def _words(blob: bytes | memoryview) -> array[int]:
    words = array("Q")
    words.frombytes(blob)
    if _BIG_ENDIAN:
        words.byteswap()
    return words


def add(
    raw: Raw, epoch: int, size: int, project: str, records: Sequence[str], *, fresh: bool
) -> None:
    """OR the keys of ``records`` (pseudonyms of ``project``, just indexed in ``epoch``)
    into the epoch's filter, in the caller's transaction. An epoch without a filter
    gets one of ``size`` words: from ``records`` when it is ``fresh`` (it began in this
    batch), else from every row it holds (it began before there were filters)."""
    row = raw.one("SELECT bits FROM prediction_filters WHERE epoch = ?", (epoch,))
    if row is None and not fresh:
        build(raw, epoch, size)
        return
    words = np.zeros(size, "<u8") if row is None else np.frombuffer(bytearray(row[0]), "<u8")
    _set(words, project, records)
    if row is None:
        raw.run(
            "INSERT INTO prediction_filters (epoch, bits) VALUES (?, ?)", (epoch, words.tobytes())
        )
    else:
        raw.run("UPDATE prediction_filters SET bits = ? WHERE epoch = ?", (words.tobytes(), epoch))


def _set(words: np.ndarray[Any, Any], project: str, records: Sequence[str]) -> None:
    """Set the bits of ``records``' keys in ``words`` (little-endian 64-bit, a power of
    two of them), all at once: the write path pays a few tens of nanoseconds a row."""
    raw = _packed(records)
    if raw is None:
        keys = np.fromiter(map(record_key, records), np.uint64, len(records))
    else:
        keys = np.frombuffer(raw, "<u8")[::2]
    keys = keys ^ np.uint64(project_mix(project))
    chosen = (keys & np.uint64(len(words) - 1)).astype(np.intp)
    pattern = (keys >> np.uint64(_PATTERN_SHIFT)) & np.uint64(_PATTERN_MASK)
    np.bitwise_or.at(words, chosen, _pattern_array()[pattern.astype(np.intp)])


@cache
def _pattern_array() -> np.ndarray[Any, Any]:
    return np.array(_patterns(), np.uint64)


def build(raw: Raw, epoch: int, size: int) -> None:
    """Write ``epoch``'s filter (``size`` words) afresh from every row the prediction
    index holds in it."""
    words = np.zeros(size, "<u8")
    by_project: dict[str, list[str]] = {}
    for project, record in raw.all(
        "SELECT project, record FROM prediction_index WHERE epoch = ?", (epoch,)
    ):
        by_project.setdefault(project, []).append(record)
    for project, records in by_project.items():
        _set(words, project, records)
    raw.run("DELETE FROM prediction_filters WHERE epoch = ?", (epoch,))
    raw.run("INSERT INTO prediction_filters (epoch, bits) VALUES (?, ?)", (epoch, words.tobytes()))


def backfill(raw: Raw, size: int) -> None:
    """Write the filter of one epoch indexed before there were filters (the newest of
    them first), in the caller's transaction; after the last, bump the generation so
    that every process drops the stand-ins it cached for them."""
    unfiltered = raw.scalar("SELECT unfiltered FROM prediction_filter_state WHERE id = 1")
    if not unfiltered:
        return
    epoch = int(unfiltered) - 1
    if raw.one("SELECT 1 FROM prediction_filters WHERE epoch = ?", (epoch,)) is None:
        build(raw, epoch, size)
    raw.run(
        "UPDATE prediction_filter_state SET unfiltered = ?, generation = generation + ? "
        "WHERE id = 1",
        (epoch, 1 if epoch == 0 else 0),
    )


def reset(raw: Raw) -> None:
    """Before the filters are written again from the log (a rebuild): none is missing
    any more, and every process must drop those it cached."""
    _bump(raw, ", unfiltered = 0")


def rewrite(raw: Raw, epochs: Iterable[int]) -> None:
    """Write again, from the rows they hold now, the filters that ``epochs`` have, in
    the caller's transaction, and bump the generation so that every process drops
    what it cached: after an erasure took rows out, no filter may still tell which
    epochs held an erased record (and so roughly when it was scored)."""
    for epoch in sorted(set(epochs)):
        row = raw.one("SELECT bits FROM prediction_filters WHERE epoch = ?", (epoch,))
        if row is not None:
            build(raw, epoch, len(row[0]) // 8)
    _bump(raw)


def _bump(raw: Raw, also: str = "") -> None:
    cursor = raw.run(
        f"UPDATE prediction_filter_state SET generation = generation + 1{also} WHERE id = 1"
    )
    if cursor.rowcount == 0:
        raw.run("INSERT INTO prediction_filter_state (id, generation, unfiltered) VALUES (1, 1, 0)")


class FilterCache:
    """The filters of one store's sealed epochs, kept in this process between lookups.

    ``bits`` holds epochs ``0 .. sealed - 1``, ``words`` words each, one after another;
    an epoch without a filter of that size (none written, or written for another epoch
    size) is all ones there: always "maybe"."""

    def __init__(self) -> None:
        self.generation: Any = None
        self.words = 0
        self.sealed = 0
        self.bits = array("Q")
        self._lock = threading.Lock()

    def epochs(self, raw: Raw, project: str, records: Iterable[str]) -> list[int]:
        """The epochs a lookup of ``records`` (pseudonyms of ``project``) must seek, in
        order: those whose filter may hold one of them, and always the newest."""
        current = self.refresh(raw)
        if current is None:
            return []
        last, bits, words = current
        if not words:  # no sealed epoch has a filter: every one is sought
            return list(range(last + 1))
        mix, patterns, top = project_mix(project), _patterns(), words - 1
        maybe: set[int] = set()
        for key in record_keys(list(records)):
            key ^= mix
            pattern = patterns[(key >> _PATTERN_SHIFT) & _PATTERN_MASK]
            column = bits[key & top :: words]
            maybe.update(e for e, word in enumerate(column) if word & pattern == pattern)
        maybe.discard(last)
        return [*sorted(e for e in maybe if e < last), last]

    def refresh(self, raw: Raw) -> tuple[int, array[int], int] | None:
        """Bring the cache up to the store (every sealed epoch's filter loaded, all
        dropped when the generation changed): the newest epoch, the bits and the
        words per epoch, or None while the index is empty. Reads the newest epoch
        and the generation in one query, in the caller's snapshot."""
        row = raw.one(
            "SELECT (SELECT MAX(epoch) FROM prediction_index), "
            "(SELECT generation FROM prediction_filter_state)"
        )
        if row is None or row[0] is None:
            return None
        last, generation = int(row[0]), row[1]
        with self._lock:
            if generation != self.generation:
                self.generation, self.words, self.sealed = generation, 0, 0
                self.bits = array("Q")
            if self.sealed < last:
                self._load(raw, last)
            return last, self.bits, self.words

    def _load(self, raw: Raw, last: int) -> None:
        """Add the filters of epochs ``sealed .. last - 1`` (now sealed)."""
        stored = dict(
            raw.all(
                "SELECT epoch, bits FROM prediction_filters WHERE epoch >= ? AND epoch < ?",
                (self.sealed, last),
            )
        )
        for epoch in range(self.sealed, last):
            blob = stored.get(epoch)
            if blob is not None and not self.words:
                self.words = len(blob) // 8
                # Epochs before the first filter had none: always sought.
                self.bits = array("Q", [_ALL_ONES]) * (self.words * epoch)
            if not self.words:
                continue
            if blob is not None and len(blob) == 8 * self.words:
                self.bits.extend(_words(blob))
            else:
                self.bits.extend(array("Q", [_ALL_ONES]) * self.words)
        self.sealed = last if self.words else self.sealed


_caches: weakref.WeakKeyDictionary[Any, FilterCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_of(store: Any) -> FilterCache:
    """The filter cache of ``store`` (one per store object in this process)."""
    with _caches_lock:
        found = _caches.get(store)
        if found is None:
            found = _caches[store] = FilterCache()
        return found
