"""Tests for audit.merkle: published RFC 9162 vectors, a literal reference, properties."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MemoryTree,
    Node,
    NodeSource,
    consistency_proof,
    consistency_ranges,
    extend,
    fold,
    frontier,
    inclusion_proof,
    inclusion_ranges,
    largest_power_of_two_below,
    leaf_hash,
    node_hash,
    root_at,
    root_from_inclusion_proof,
    root_hash,
    subtree_hash,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)

FIXTURES = Path(__file__).parent / "fixtures" / "merkle"
INCLUSION_FILES = sorted((FIXTURES / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((FIXTURES / "consistency").rglob("*.json"))

#: The eight entries behind the published vectors (RFC 6962 test data).
VECTOR_ENTRIES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
VECTOR_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
VECTOR_LEAVES = [leaf_hash(entry) for entry in VECTOR_ENTRIES]

#: One shared tree: the tree of size n is its first n leaves, and its perfect
#: subtrees are those of every prefix, so one MemoryTree serves every size.
SIZE = 1100
ENTRIES = tuple(b"entry-%d" % i for i in range(SIZE))
LEAVES = [leaf_hash(entry) for entry in ENTRIES]
TREE = MemoryTree(LEAVES)
ROOTS = [root_hash(LEAVES[:n]) for n in range(SIZE + 1)]

OTHER_HASH = hashlib.sha256(b"not in the tree").digest()


# --------------------------------------------------------------------------- reference


def ref_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def ref_mth(d: tuple[bytes, ...]) -> bytes:
    """RFC 9162 2.1.1, MTH(D[n]) over raw entries."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = ref_k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[0:k]) + ref_mth(d[k:n])).digest()


def ref_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """RFC 9162 2.1.3.1, PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, d[0:k]), ref_mth(d[k:n])]
    return [*ref_path(m - k, d[k:n]), ref_mth(d[0:k])]


def ref_subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1, SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[0:k], b), ref_mth(d[k:n])]
    return [*ref_subproof(m - k, d[k:n], False), ref_mth(d[0:k])]


def ref_proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """RFC 9162 2.1.4.1, PROOF(m, D[n])."""
    return ref_subproof(m, d, True)


def ref_nodes(lo: int, hi: int) -> set[tuple[int, int]]:
    """Every [start, end) node of the RFC tree over D[lo:hi]."""
    nodes = {(lo, hi)}
    if hi - lo > 1:
        k = ref_k(hi - lo)
        nodes |= ref_nodes(lo, lo + k) | ref_nodes(lo + k, hi)
    return nodes


# --------------------------------------------------------------------------- helpers


def b64(value: str) -> bytes:
    return base64.b64decode(value)


def load(path: Path) -> dict[str, Any]:
    probe: dict[str, Any] = json.loads(path.read_text())
    return probe


def flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def bit_flips(value: bytes) -> list[bytes]:
    return [flip(value, bit) for bit in range(len(value) * 8)]


def inclusion_shape(index: int, size: int) -> tuple[bool, ...] | None:
    """Which side each proof hash goes on; the verifier's work depends on nothing else."""
    if not 0 <= index < size:
        return None
    return tuple(start < index for start, _ in inclusion_ranges(index, size))


def consistency_shape(size1: int, size2: int) -> tuple[bool, tuple[bool, ...]] | None:
    """Whether root1 is the seed, and which proof hashes lie inside the old tree."""
    if not 0 < size1 <= size2:
        return None
    ranges = consistency_ranges(size1, size2)
    return (size1 & (size1 - 1)) == 0, tuple(end <= size1 for _, end in ranges)


class CountingSource:
    """A NodeSource wrapper recording every nodes() call."""

    def __init__(self, inner: NodeSource) -> None:
        self.inner = inner
        self.calls: list[list[Node]] = []

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        self.calls.append(list(keys))
        return self.inner.nodes(keys)


class SyntheticSource:
    """Fabricates a hash from each key of a tree of `size` leaves; checks the keys are real."""

    def __init__(self, size: int) -> None:
        self.size = size

    def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        out: dict[Node, bytes] = {}
        for level, index in keys:
            assert level >= 0 and index >= 0 and (index + 1) << level <= self.size
            out[(level, index)] = hashlib.sha256(b"%d/%d" % (level, index)).digest()
        return out


def ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


# --------------------------------------------------------------------------- published vectors


def test_fixture_files_are_all_there() -> None:
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98
    assert len(INCLUSION_FILES) + len(CONSISTENCY_FILES) == 196


@pytest.mark.parametrize(
    "path", INCLUSION_FILES, ids=[str(p.relative_to(FIXTURES)) for p in INCLUSION_FILES]
)
def test_inclusion_vector(path: Path) -> None:
    probe = load(path)
    proof = [b64(h) for h in probe["proof"] or []]
    ok = verify_inclusion(
        probe["leafIdx"], probe["treeSize"], b64(probe["leafHash"]), proof, b64(probe["root"])
    )
    assert ok is (not probe["wantErr"]), probe["desc"]


@pytest.mark.parametrize(
    "path", CONSISTENCY_FILES, ids=[str(p.relative_to(FIXTURES)) for p in CONSISTENCY_FILES]
)
def test_consistency_vector(path: Path) -> None:
    probe = load(path)
    proof = [b64(h) for h in probe["proof"] or []]
    ok = verify_consistency(
        probe["size1"], probe["size2"], b64(probe["root1"]), b64(probe["root2"]), proof
    )
    assert ok is (not probe["wantErr"]), probe["desc"]


def test_vector_tree_roots() -> None:
    for n in range(1, 9):
        assert root_hash(VECTOR_LEAVES[:n]).hex() == VECTOR_ROOTS[n - 1]
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_vector_happy_paths_match_generated_proofs() -> None:
    """The published happy paths are exactly the proofs this module generates."""
    checked = 0
    for path in INCLUSION_FILES:
        probe = load(path)
        if probe["wantErr"] or "additional" in path.parts or "single-entry" in path.parts:
            continue
        index, size = probe["leafIdx"], probe["treeSize"]
        assert b64(probe["root"]) == root_at(size, VECTOR_LEAVES)
        assert b64(probe["leafHash"]) == VECTOR_LEAVES[index]
        assert inclusion_proof(index, size, VECTOR_LEAVES) == [b64(h) for h in probe["proof"] or []]
        checked += 1
    for path in CONSISTENCY_FILES:
        probe = load(path)
        if probe["wantErr"] or "additional" in path.parts:
            continue
        size1, size2 = probe["size1"], probe["size2"]
        assert b64(probe["root1"]) == root_at(size1, VECTOR_LEAVES)
        assert b64(probe["root2"]) == root_at(size2, VECTOR_LEAVES)
        assert consistency_proof(size1, size2, VECTOR_LEAVES) == [
            b64(h) for h in probe["proof"] or []
        ]
        checked += 1
    assert checked == 10


# --------------------------------------------------------------------------- reference comparison


def test_hash_primitives() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    )
    assert HASH_SIZE == 32 == len(leaf_hash(b""))


def test_largest_power_of_two_below() -> None:
    for n in range(2, 2000):
        assert largest_power_of_two_below(n) == ref_k(n)
    for bad in (0, 1, -3):
        with pytest.raises(ValueError):
            largest_power_of_two_below(bad)


def test_roots_match_reference() -> None:
    for n in range(0, 301):
        want = ref_mth(ENTRIES[:n])
        assert ROOTS[n] == want
        assert root_hash(LEAVES[:n]) == want
        assert root_at(n, TREE) == want
        assert root_at(n, LEAVES) == want
        assert root_at(n, MemoryTree(LEAVES[:n])) == want
        assert (
            fold(
                [LEAVES[i] if lv == 0 else TREE.nodes([(lv, i)])[(lv, i)] for lv, i in frontier(n)]
            )
            == want
        )


def test_subtree_nodes_are_exactly_the_tree_nodes() -> None:
    limit = 70
    nodes: set[tuple[int, int]] = set()
    for n in range(1, limit + 1):
        nodes |= ref_nodes(0, n)
    for start in range(limit + 1):
        for end in range(start + 1, limit + 1):
            if (start, end) in nodes:
                pieces = subtree_nodes(start, end)
                covered = [(i << lv, (i + 1) << lv) for lv, i in pieces]
                assert covered[0][0] == start and covered[-1][1] == end
                assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
                assert [lv for lv, _ in pieces] == sorted({lv for lv, _ in pieces}, reverse=True)
                assert subtree_hash(start, end, TREE) == ref_mth(ENTRIES[start:end])
                assert subtree_hash(start, end, LEAVES) == ref_mth(ENTRIES[start:end])
            else:
                with pytest.raises(ValueError):
                    subtree_nodes(start, end)
    assert subtree_nodes(0, 0) == [] == frontier(0)
    assert fold([]) == EMPTY_ROOT
    for start, end in [(1, 3), (2, 5), (3, 3), (5, 4), (-1, 1), (0, -1), (6, 9), (4, 9)]:
        with pytest.raises(ValueError):
            subtree_nodes(start, end)


def test_frontier_is_the_binary_digits_of_the_size() -> None:
    assert frontier(13) == [(3, 0), (2, 2), (0, 12)]
    assert frontier(16) == [(4, 0)]
    for n in range(1, 600):
        assert [1 << lv for lv, _ in frontier(n)] == [
            1 << b for b in range(n.bit_length() - 1, -1, -1) if n >> b & 1
        ]


def test_inclusion_proofs_match_reference() -> None:
    for n in range(1, 301):
        d = ENTRIES[:n]
        for index in range(n):
            proof = inclusion_proof(index, n, TREE)
            assert proof == ref_path(index, d)
            assert verify_inclusion(index, n, LEAVES[index], proof, ROOTS[n])
            assert root_from_inclusion_proof(index, n, LEAVES[index], proof) == ROOTS[n]
        assert inclusion_proof(n - 1, n, LEAVES[:n]) == ref_path(n - 1, d)


def test_consistency_proofs_match_reference() -> None:
    for n in range(1, 301):
        d = ENTRIES[:n]
        for size1 in range(1, n + 1):
            proof = consistency_proof(size1, n, TREE)
            assert proof == (ref_proof(size1, d) if size1 < n else [])
            assert verify_consistency(size1, n, ROOTS[size1], ROOTS[n], proof)
        assert consistency_proof(0, n, TREE) == []
        assert consistency_proof(1, n, LEAVES[:n]) == ref_proof(1, d)


# --------------------------------------------------------------------------- preconditions


def test_proof_preconditions() -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(5, 5, LEAVES)
    for index, size in [(-1, 5), (0, 0), (True, 5), (0, 5.0)]:
        with pytest.raises(ValueError):
            inclusion_proof(index, size, LEAVES)  # type: ignore[arg-type]
    for size1, size2 in [(3, 2), (-1, 2), (1, -1), (False, 2)]:
        with pytest.raises(ValueError):
            consistency_proof(size1, size2, LEAVES)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        inclusion_ranges(0, 1 << 64)
    assert len(inclusion_ranges(0, (1 << 64) - 1)) == 64
    with pytest.raises(ValueError):
        root_from_inclusion_proof(0, 2, LEAVES[0], [])
    with pytest.raises(ValueError):
        root_from_inclusion_proof(0, 2, LEAVES[0], [LEAVES[1], LEAVES[1]])


def test_memory_tree_refuses_incomplete_nodes() -> None:
    tree = MemoryTree(LEAVES[:5])
    assert len(tree) == 5
    assert tree.nodes([(2, 0), (0, 4)]) == {(2, 0): ROOTS[4], (0, 4): LEAVES[4]}
    for key in [(1, 2), (3, 0), (0, 5), (-1, 0), (0, -1), (64, 0)]:
        with pytest.raises(KeyError):
            tree.nodes([key])
    with pytest.raises(KeyError):
        MemoryTree([]).nodes([(0, 0)])


def test_node_source_must_answer_every_key() -> None:
    class Forgetful:
        def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
            return {}

    class Short:
        def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
            return {key: b"short" for key in keys}

    with pytest.raises(LookupError):
        inclusion_proof(0, 4, Forgetful())
    with pytest.raises(ValueError):
        consistency_proof(1, 4, Short())


# --------------------------------------------------------------------------- one query per proof


def test_one_nodes_call_per_proof_on_a_large_tree() -> None:
    rng = random.Random(7)
    for n in [1_000_000, 1 << 20, (1 << 20) - 1, (1 << 20) + 1, 999_999]:
        bound = 2 * ceil_log2(n) - 1
        source = CountingSource(SyntheticSource(n))
        for index in [0, 1, n // 2, n - 2, n - 1, *rng.sample(range(n), 50)]:
            before = len(source.calls)
            proof = inclusion_proof(index, n, source)
            assert len(source.calls) == before + 1
            keys = source.calls[-1]
            assert len(keys) == len(set(keys)) <= bound
            assert len(proof) == len(inclusion_ranges(index, n)) <= ceil_log2(n)
        for size1 in [1, 2, 3, n // 2, n - 1, *rng.sample(range(1, n), 50)]:
            before = len(source.calls)
            proof = consistency_proof(size1, n, source)
            assert len(source.calls) == before + 1
            keys = source.calls[-1]
            assert len(keys) == len(set(keys)) <= bound
            assert 0 < len(proof) <= ceil_log2(n) + 1


def test_key_bound_is_tight_on_small_trees() -> None:
    """A proof reads at most 2 * ceil(log2 n) - 1 perfect nodes, and that bound is reached.

    An inclusion proof has at most ceil(log2 n) hashes, a consistency proof one
    more; at most one of them covers a range on the right edge that is not a
    perfect subtree, and that range splits into fewer than ceil(log2 n) pieces.
    """
    worst: dict[int, list[int]] = {}
    for n in range(2, 257):
        bits = ceil_log2(n)
        row = worst.setdefault(bits, [0, 0])
        for index in range(n):
            keys = sum(len(subtree_nodes(*r)) for r in inclusion_ranges(index, n))
            row[0] = max(row[0], keys)
        for size1 in range(1, n + 1):
            keys = sum(len(subtree_nodes(*r)) for r in consistency_ranges(size1, n))
            row[1] = max(row[1], keys)
    assert worst[1] == [1, 1]
    for bits in range(2, 9):
        assert worst[bits] == [2 * bits - 2, 2 * bits - 1]


def test_counted_proofs_match_memory_tree() -> None:
    n = 1000
    source = CountingSource(TREE)
    for index in range(0, n, 7):
        proof = inclusion_proof(index, n, source)
        assert len(source.calls) == 1
        assert proof == ref_path(index, ENTRIES[:n])
        source.calls.clear()
    for size1 in range(1, n, 9):
        proof = consistency_proof(size1, n, source)
        assert len(source.calls) == 1
        assert proof == ref_proof(size1, ENTRIES[:n])
        source.calls.clear()
    # Empty proofs need no query at all.
    assert inclusion_proof(0, 1, source) == []
    assert consistency_proof(5, 5, source) == []
    assert consistency_proof(0, 5, source) == []
    assert source.calls == []


def test_subtree_hash_and_root_at_read_once() -> None:
    source = CountingSource(TREE)
    assert root_at(1000, source) == ROOTS[1000]
    assert root_at(0, source) == EMPTY_ROOT
    assert subtree_hash(512, 1000, source) == ref_mth(ENTRIES[512:1000])
    assert [len(keys) for keys in source.calls] == [6, 5]


# --------------------------------------------------------------------------- properties


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, SIZE))
    return draw(st.integers(1, size2)), size2


@settings(max_examples=40, deadline=None)
@given(inclusion_cases())
def test_inclusion_property(case: tuple[int, int]) -> None:
    index, size = case
    leaf, root = LEAVES[index], ROOTS[size]
    proof = inclusion_proof(index, size, TREE)
    assert verify_inclusion(index, size, leaf, proof, root)
    assert verify_inclusion(index, size, leaf, tuple(proof), root)

    # Every single-bit change of a hash.
    for pos, item in enumerate(proof):
        for bad in bit_flips(item):
            assert not verify_inclusion(
                index, size, leaf, [*proof[:pos], bad, *proof[pos + 1 :]], root
            )
    for bad in bit_flips(leaf):
        assert not verify_inclusion(index, size, bad, proof, root)
    for bad in bit_flips(root):
        assert not verify_inclusion(index, size, leaf, proof, bad)

    # Every single-bit change of the index; of the size, unless the proof has
    # the same shape for the changed size (RFC 9162 proofs bind the size only
    # through their shape; the tree head binds size and root together).
    for bit in range(64):
        assert not verify_inclusion(index ^ (1 << bit), size, leaf, proof, root)
        other = size ^ (1 << bit)
        same = inclusion_shape(index, other) == inclusion_shape(index, size)
        assert verify_inclusion(index, other, leaf, proof, root) is same
        if size < (1 << 62):
            assert not verify_inclusion(index, size + (1 << 62), leaf, proof, root)

    # One hash more or less.
    for pos in range(len(proof) + 1):
        for extra in (OTHER_HASH, leaf, root):
            assert not verify_inclusion(
                index, size, leaf, [*proof[:pos], extra, *proof[pos:]], root
            )
    for pos in range(len(proof)):
        assert not verify_inclusion(index, size, leaf, proof[:pos] + proof[pos + 1 :], root)

    # Hashes of 31 or 33 bytes.
    for resize in (lambda h: h[:31], lambda h: h + b"\x00"):
        assert not verify_inclusion(index, size, resize(leaf), proof, root)
        assert not verify_inclusion(index, size, leaf, proof, resize(root))
        for pos in range(len(proof)):
            assert not verify_inclusion(
                index, size, leaf, [*proof[:pos], resize(proof[pos]), *proof[pos + 1 :]], root
            )


@settings(max_examples=40, deadline=None)
@given(consistency_cases())
def test_consistency_property(case: tuple[int, int]) -> None:
    size1, size2 = case
    root1, root2 = ROOTS[size1], ROOTS[size2]
    proof = consistency_proof(size1, size2, TREE)
    assert verify_consistency(size1, size2, root1, root2, proof)
    assert verify_consistency(size1, size2, root1, root2, tuple(proof))

    for pos, item in enumerate(proof):
        for bad in bit_flips(item):
            assert not verify_consistency(
                size1, size2, root1, root2, [*proof[:pos], bad, *proof[pos + 1 :]]
            )
    for bad in bit_flips(root1):
        assert not verify_consistency(size1, size2, bad, root2, proof)
    for bad in bit_flips(root2):
        assert not verify_consistency(size1, size2, root1, bad, proof)

    # Sizes: rejected unless the changed sizes give the proof the same shape
    # (then the verifier does exactly the same hashing on the same inputs).
    want = consistency_shape(size1, size2)
    for bit in range(64):
        for other1, other2 in ((size1 ^ (1 << bit), size2), (size1, size2 ^ (1 << bit))):
            same = consistency_shape(other1, other2) == want
            assert verify_consistency(other1, other2, root1, root2, proof) is same
    assert not verify_consistency(0, size2, root1, root2, proof)
    assert not verify_consistency(size2, size1, root2, root1, proof) or size1 == size2

    for pos in range(len(proof) + 1):
        for extra in (OTHER_HASH, root1, root2):
            assert not verify_consistency(
                size1, size2, root1, root2, [*proof[:pos], extra, *proof[pos:]]
            )
    for pos in range(len(proof)):
        assert not verify_consistency(size1, size2, root1, root2, proof[:pos] + proof[pos + 1 :])

    for resize in (lambda h: h[:31], lambda h: h + b"\x00"):
        assert not verify_consistency(size1, size2, resize(root1), root2, proof)
        assert not verify_consistency(size1, size2, root1, resize(root2), proof)
        for pos in range(len(proof)):
            assert not verify_consistency(
                size1, size2, root1, root2, [*proof[:pos], resize(proof[pos]), *proof[pos + 1 :]]
            )


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    assert verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])
    assert not verify_consistency(7, 7, ROOTS[7], ROOTS[6], [])
    assert not verify_consistency(7, 7, ROOTS[7], ROOTS[7], [ROOTS[7]])
    # Nothing is hashed here, so (as the published vectors require) the roots
    # are compared without a length check.
    assert verify_consistency(1, 1, b"don't care 2", b"don't care 2", [])
    assert not verify_consistency(1, 1, "x", "x", [])  # type: ignore[arg-type]
    # From the empty tree: always refused.
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])


GARBAGE = [None, True, False, -1, 1.0, "1", b"1", [], [1], 2**70, -(2**70), object()]


@pytest.mark.parametrize("position", range(5))
def test_inclusion_rejects_malformed_arguments(position: int) -> None:
    index, size = 5, 13
    good: list[Any] = [index, size, LEAVES[index], inclusion_proof(index, size, TREE), ROOTS[size]]
    assert verify_inclusion(*good)
    for bad in GARBAGE:
        args = list(good)
        args[position] = bad
        assert verify_inclusion(*args) is False
    # Bools are not ints, even where their value would be right.
    assert not verify_inclusion(True, 2, LEAVES[1], [LEAVES[0]], ROOTS[2])
    assert verify_inclusion(1, 2, LEAVES[1], [LEAVES[0]], ROOTS[2])
    assert not verify_inclusion(0, 1, LEAVES[0], [], bytearray(ROOTS[1]))  # type: ignore[arg-type]
    assert not verify_inclusion(0, 2, LEAVES[0], [bytearray(LEAVES[1])], ROOTS[2])  # type: ignore[list-item]
    assert not verify_inclusion(0, 2, LEAVES[0], [LEAVES[1].hex()], ROOTS[2])  # type: ignore[list-item]


@pytest.mark.parametrize("position", range(5))
def test_consistency_rejects_malformed_arguments(position: int) -> None:
    size1, size2 = 5, 13
    good: list[Any] = [size1, size2, ROOTS[size1], ROOTS[size2], consistency_proof(5, 13, TREE)]
    assert verify_consistency(*good)
    for bad in GARBAGE:
        args = list(good)
        args[position] = bad
        assert verify_consistency(*args) is False
    assert verify_consistency(1, 2, ROOTS[1], ROOTS[2], [LEAVES[1]])
    assert not verify_consistency(True, 2, ROOTS[1], ROOTS[2], [LEAVES[1]])
    assert not verify_consistency(1, 2, ROOTS[1], ROOTS[2], [LEAVES[1]] * 70)


_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.binary(max_size=40),
    st.text(max_size=5),
    st.lists(st.one_of(st.binary(min_size=30, max_size=34), st.integers(), st.text()), max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(_ANY, _ANY, _ANY, _ANY, _ANY)
def test_verifiers_never_raise(a: Any, b: Any, c: Any, d: Any, e: Any) -> None:
    assert verify_inclusion(a, b, c, d, e) in (True, False)
    assert verify_consistency(a, b, c, d, e) in (True, False)


# --------------------------------------------------------------------------- extend


def _replay(batches: Sequence[int]) -> tuple[int, dict[Node, bytes]]:
    size = 0
    stored: dict[Node, bytes] = {}
    for batch in batches:
        hashes = [LEAVES[i] if lv == 0 else stored[(lv, i)] for lv, i in frontier(size)]
        created = extend(size, hashes, LEAVES[size : size + batch])
        assert not created.keys() & stored.keys()
        assert all(lv >= 1 for lv, _ in created)
        stored.update(created)
        size += batch
    return size, stored


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=25))
def test_extend_builds_every_perfect_subtree_once(batches: list[int]) -> None:
    size, stored = _replay(batches)
    want = {(lv, i) for lv in range(1, size.bit_length()) for i in range(size >> lv)}
    assert stored.keys() == want
    assert len(stored) == size - size.bit_count()
    got = TREE.nodes(list(want))
    assert all(stored[key] == got[key] for key in want)
    hashes = [LEAVES[i] if lv == 0 else stored[(lv, i)] for lv, i in frontier(size)]
    assert fold(hashes) == root_at(size, TREE) == ROOTS[size]


def test_extend_edges() -> None:
    assert extend(0, [], []) == {}
    assert extend(0, [], [LEAVES[0]]) == {}
    assert extend(1, [LEAVES[0]], [LEAVES[1]]) == {(1, 0): ROOTS[2]}
    assert extend(3, [ROOTS[2], LEAVES[2]], [LEAVES[3]]) == {
        (1, 1): node_hash(LEAVES[2], LEAVES[3]),
        (2, 0): ROOTS[4],
    }
    assert extend(7, [ROOTS[4], subtree_hash(4, 6, TREE), LEAVES[6]], []) == {}
    with pytest.raises(ValueError):
        extend(3, [ROOTS[2]], [LEAVES[3]])
    with pytest.raises(ValueError):
        extend(-1, [], [])
    size, stored = _replay([1] * 64)
    assert size == 64 and len(stored) == 63


def test_extend_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch onto a 40-node frontier costs one hash per new node, nothing more."""
    calls = 0

    def counting_sha256(data: bytes = b"") -> Any:
        nonlocal calls
        calls += 1
        return hashlib.sha256(data)

    monkeypatch.setattr(merkle, "hashlib", SimpleNamespace(sha256=counting_sha256))
    size = (1 << 40) - 1
    created = extend(size, [OTHER_HASH] * 40, [OTHER_HASH] * 1000)
    monkeypatch.undo()
    new_size = size + 1000
    assert len(created) == (new_size - new_size.bit_count()) - (size - size.bit_count())
    assert calls == len(created)
