"""RFC 6962 / RFC 9162 Merkle tree over the event log: hashes, proofs, appends.

The tree
--------
The log's entries ``D[0:n]`` are committed to by the Merkle Tree Hash (MTH) of
RFC 9162 section 2.1.1, with SHA-256 and domain-separated inputs::

    MTH({})      = SHA-256()                                  (the empty string)
    MTH({d(0)})  = SHA-256(0x00 || d(0))                      (a leaf hash)
    MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  for n > 1,

where ``k`` is the largest power of two smaller than ``n`` (``k < n <= 2k``).
Everything in this module works on *leaf hashes* (``leaf_hash(d)``), never on
the entries themselves.

Perfect-subtree addressing
--------------------------
Because ``k`` is always a power of two, the left child of every inner node is a
*perfect* subtree: a complete binary tree over ``2**level`` leaves. A perfect
subtree is named by a :data:`Node` ``(level, index)`` and covers the leaves
``[index << level, (index + 1) << level)``; level 0 nodes are the leaf hashes.
A perfect subtree never changes once its last leaf exists, which is what makes
them storable (a database projection keeps every node of level >= 1, see
:func:`extend`).

Every node of an RFC 6962 tree covers a range ``[start, end)`` where ``start``
is a multiple of ``2**ceil(log2(end - start))``, and every such range is a
node of the tree of size ``end``: either a perfect subtree or a range on that
tree's right edge. Its MTH
is rebuilt from perfect subtrees alone: the range splits into the binary digits
of its length, largest first (:func:`subtree_nodes`), and the hashes of those
pieces are folded from the right (:func:`fold`)::

    MTH(D[start:end]) = node(p1, node(p2, ... node(p(j-1), pj)))

This is the same decomposition as the RFC's recursion, which peels off the
largest perfect left child at every step. The whole tree of size ``n`` is the
range ``[0, n)``; its pieces are the tree's *frontier* (:func:`frontier`).

Proofs
------
An inclusion proof (RFC 9162 section 2.1.3.1, ``PATH``) and a consistency
proof (section 2.1.4.1, ``PROOF`` / ``SUBPROOF``) are lists of MTHs of tree
nodes. :func:`inclusion_ranges` and :func:`consistency_ranges` run the RFC's
recursions iteratively and return those nodes as ``[start, end)`` ranges, in
proof order (deepest first). A proof has at most ``ceil(log2 n)`` hashes
(one more for consistency) and at most one of its ranges is not a perfect
subtree (the first range met on the right edge), which splits into fewer than
``ceil(log2 n)`` pieces; so a proof needs at most ``2 * ceil(log2 n) - 1``
perfect nodes, which :func:`inclusion_proof` and :func:`consistency_proof` read
from a :class:`NodeSource` in a single call.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows
the algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step. The
published transparency-dev test vectors settle the cases the RFC leaves open:
a consistency check from size 0 is always rejected, and for two equal sizes
the proof must be empty and the two roots identical. As in the RFC, a proof
binds the tree size only through its shape (an inclusion proof for leaf 0 is
the same in trees of 5 and 6 leaves when the last sibling hash is given), so a
verifier must take the size and the root from one signed tree head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from registry.canonical import EMPTY_ROOT, NODE_PREFIX, leaf_hash, node_hash

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemoryTree",
    "Node",
    "NodeSource",
    "consistency_proof",
    "consistency_ranges",
    "extend",
    "fold",
    "frontier",
    "inclusion_proof",
    "inclusion_ranges",
    "largest_power_of_two_below",
    "leaf_hash",
    "node_hash",
    "root_at",
    "root_from_inclusion_proof",
    "root_hash",
    "subtree_hash",
    "subtree_nodes",
    "verify_consistency",
    "verify_inclusion",
]

#: Length in bytes of every hash in the tree (SHA-256).
HASH_SIZE = 32

#: ``(level, index)``: the perfect subtree over leaves ``[index << level, (index + 1) << level)``.
Node = tuple[int, int]


#: Sizes and indices are 64-bit, as in RFC 9162.
_MAX_COUNT = (1 << 64) - 1


# --------------------------------------------------------------------------- hashing
# ``leaf_hash``, ``node_hash`` and ``EMPTY_ROOT`` are the ledger's own
# (``registry.canonical``), re-exported here with the rest of the tree's arithmetic.


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the MTH of the whole list of leaf hashes (``EMPTY_ROOT`` when empty).

    Precondition: every item is a 32-byte leaf hash (not checked, for speed).

    Works level by level in ``O(n)`` time and without recursion: pairing the
    nodes of a level from the left and carrying a lone last node up unchanged
    builds exactly the RFC 6962 tree.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        upper = _pair_up(level)
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def _pair_up(level: list[bytes]) -> list[bytes]:
    """Return the parents of ``level[0:2]``, ``level[2:4]``, ... (a lone last node is dropped)."""
    sha = hashlib.sha256
    pairs = iter(level)
    prefix = NODE_PREFIX
    return [sha(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of ``subtree_nodes(start, end)``, in order, into ``MTH(D[start:end])``.

    A right fold: the last hash is the seed and each earlier one is hashed in on
    the left (``h = node_hash(p, h)``). ``fold([])`` is ``EMPTY_ROOT``, matching
    ``subtree_nodes(0, 0) == []`` for the empty tree.
    """
    if not hashes:
        return EMPTY_ROOT
    sha = hashlib.sha256
    h = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        h = sha(NODE_PREFIX + hashes[i] + h).digest()
    return h


# --------------------------------------------------------------------------- addressing


def largest_power_of_two_below(n: int) -> int:
    """Return the RFC's split point ``k``: the largest power of two with ``k < n``.

    Precondition: ``n >= 2`` (``ValueError`` otherwise).
    """
    n = _count("n", n)
    if n < 2:
        raise ValueError(f"largest_power_of_two_below needs n >= 2, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def subtree_nodes(start: int, end: int) -> list[Node]:
    """Return the perfect subtrees whose hashes make ``MTH(D[start:end])``, largest first.

    Precondition: ``[start, end)`` is a node of an RFC 6962 tree, that is
    ``0 <= start < end`` and ``start`` is a multiple of ``2**ceil(log2(end - start))``
    (the smallest power of two not below the length), or ``start == end == 0``
    (the empty tree, which has no nodes). A perfect subtree comes back as
    itself; a range on the right edge of a tree comes back as one perfect
    subtree per binary digit of its length, largest first. Anything else raises
    ``ValueError``.
    """
    start = _count("start", start)
    end = _count("end", end)
    if start == end == 0:
        return []
    if end <= start:
        raise ValueError(f"[{start}, {end}) is not a node of a Merkle tree: it is empty")
    length = end - start
    if start & ((1 << (length - 1).bit_length()) - 1):
        raise ValueError(
            f"[{start}, {end}) is not a node of a Merkle tree: start must be a multiple of "
            f"{1 << (length - 1).bit_length()}"
        )
    nodes: list[Node] = []
    pos = start
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            nodes.append((level, pos >> level))
            pos += 1 << level
    return nodes


def frontier(size: int) -> list[Node]:
    """Return the perfect subtrees that make up the tree of ``size`` leaves, largest first.

    The same as ``subtree_nodes(0, size)``: one node per binary digit of ``size``.
    """
    return subtree_nodes(0, size)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` nodes whose MTHs form the inclusion proof of leaf ``index``.

    RFC 9162 section 2.1.3.1, ``PATH(index, D[size])``, in proof order (the
    sibling nearest the leaf first, the root's other child last).
    Precondition: ``0 <= index < size`` (``ValueError`` otherwise).
    """
    index = _count("index", index)
    size = _count("size", size)
    if index >= size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` nodes whose MTHs form the consistency proof ``size1 -> size2``.

    RFC 9162 section 2.1.4.1, ``PROOF(size1, D[size2]) = SUBPROOF(size1, D[size2], true)``,
    in proof order. Empty when ``size1 == size2`` or ``size1 == 0`` (there is
    nothing to prove). Precondition: ``0 <= size1 <= size2`` (``ValueError`` otherwise).
    """
    size1 = _count("size1", size1)
    size2 = _count("size2", size2)
    if size1 > size2:
        raise ValueError(f"size1 ({size1}) is larger than size2 ({size2})")
    if size1 == 0 or size1 == size2:
        return []
    ranges: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        if m <= mid - lo:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            m -= mid - lo
            lo = mid
            whole = False
    if not whole:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


# --------------------------------------------------------------------------- node sources


@runtime_checkable
class NodeSource(Protocol):
    """Anything that can hand out hashes of perfect subtrees (level 0 = leaf hashes)."""

    def nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """Return the hash of every node in ``keys`` (each must be complete in the tree)."""
        ...


class MemoryTree:
    """A :class:`NodeSource` over an in-memory list of leaf hashes.

    Levels are computed on first use and kept, so after the first proof every
    further proof is a handful of list lookups. Precondition: the items are
    32-byte leaf hashes.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._levels: list[list[bytes]] = [list(leaf_hashes)]

    def __len__(self) -> int:
        """Return the number of leaves."""
        return len(self._levels[0])

    def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        """Return the hash of each perfect subtree in ``keys``.

        Raises ``KeyError`` for a key that is not a complete perfect subtree of
        this tree (negative, or reaching past the last leaf).
        """
        size = len(self._levels[0])
        found: dict[Node, bytes] = {}
        for key in keys:
            level, index = key
            if (
                isinstance(level, bool)
                or isinstance(index, bool)
                or not isinstance(level, int)
                or not isinstance(index, int)
                or level < 0
                or index < 0
                or level >= size.bit_length()
                or (index + 1) << level > size
            ):
                raise KeyError(key)
            found[(level, index)] = self._level(level)[index]
        return found

    def _level(self, level: int) -> list[bytes]:
        levels = self._levels
        while len(levels) <= level:
            levels.append(_pair_up(levels[-1]))
        return levels[level]


def _as_source(source: NodeSource | Sequence[bytes]) -> NodeSource:
    if isinstance(source, NodeSource):
        return source
    if isinstance(source, (str, bytes, bytearray, memoryview)):
        raise ValueError("a node source must be a NodeSource or a sequence of leaf hashes")
    return MemoryTree(source)


def _fetch(source: NodeSource, keys: list[Node]) -> list[bytes]:
    """Read ``keys`` with one ``source.nodes`` call (none for no keys), in order."""
    if not keys:
        return []
    found = source.nodes(keys)
    hashes: list[bytes] = []
    for key in keys:
        try:
            value = found[key]
        except KeyError:
            raise LookupError(f"the node source returned no hash for node {key}") from None
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ValueError(f"the node source returned a malformed hash for node {key}")
        hashes.append(value)
    return hashes


def _range_hashes(
    ranges: Sequence[tuple[int, int]], source: NodeSource | Sequence[bytes]
) -> list[bytes]:
    """Return ``MTH(D[start:end])`` for each range, reading all nodes in one call."""
    groups = [subtree_nodes(start, end) for start, end in ranges]
    keys = [key for group in groups for key in group]
    if not keys:
        return [EMPTY_ROOT for _ in groups]
    hashes = _fetch(_as_source(source), keys)
    out: list[bytes] = []
    pos = 0
    for group in groups:
        out.append(fold(hashes[pos : pos + len(group)]))
        pos += len(group)
    return out


def subtree_hash(start: int, end: int, source: NodeSource | Sequence[bytes]) -> bytes:
    """Return ``MTH(D[start:end])`` for a range that is a node (see :func:`subtree_nodes`).

    ``source`` is a :class:`NodeSource` (read with one ``nodes`` call) or the
    list of leaf hashes itself. ``ValueError`` when the range is not a node.
    """
    nodes = subtree_nodes(start, end)
    if not isinstance(source, NodeSource):
        if isinstance(source, (str, bytes, bytearray, memoryview)):
            raise ValueError("a node source must be a NodeSource or a sequence of leaf hashes")
        if end > len(source):
            raise ValueError(f"range [{start}, {end}) reaches past {len(source)} leaves")
        return root_hash(source[start:end])
    return fold(_fetch(source, nodes))


def root_at(size: int, source: NodeSource | Sequence[bytes]) -> bytes:
    """Return ``MTH(D[0:size])``, the root of the tree's first ``size`` leaves.

    ``size == 0`` gives ``EMPTY_ROOT``. Precondition: the source holds at least
    ``size`` leaves.
    """
    return subtree_hash(0, size, source)


# --------------------------------------------------------------------------- proofs


def inclusion_proof(index: int, size: int, source: NodeSource | Sequence[bytes]) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Precondition: ``0 <= index < size`` (``ValueError`` otherwise) and the
    source holds at least ``size`` leaves. All perfect nodes are read with a
    single ``source.nodes`` call of at most ``2 * ceil(log2 size) - 1`` keys (no
    call when the proof is empty, i.e. ``size == 1``). A plain sequence of leaf
    hashes is wrapped in a fresh :class:`MemoryTree`, which costs ``O(size)``
    hashing per call; keep a :class:`MemoryTree` to make many proofs.
    """
    return _range_hashes(inclusion_ranges(index, size), source)


def consistency_proof(size1: int, size2: int, source: NodeSource | Sequence[bytes]) -> list[bytes]:
    """Return the RFC 9162 consistency proof between the trees of ``size1`` and ``size2`` leaves.

    Precondition: ``0 <= size1 <= size2`` (``ValueError`` otherwise) and the
    source holds at least ``size2`` leaves. The proof is empty for
    ``size1 == size2`` and for ``size1 == 0``. One ``source.nodes`` call of at
    most ``2 * ceil(log2 size2) - 1`` keys (none for an empty proof); sources as
    for :func:`inclusion_proof`.
    """
    return _range_hashes(consistency_ranges(size1, size2), source)


def root_from_inclusion_proof(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root that ``proof`` implies for ``leaf_hash`` at ``leaf_index``.

    RFC 9162 section 2.1.3.2, steps 1 to 4 plus the size check of step 5.
    Raises ``ValueError`` on any malformed input: sizes that are not ints
    (bools included) or are outside ``[0, 2**64)``, ``leaf_index >= tree_size``, hashes that
    are not 32-byte ``bytes``, or a proof of the wrong length.
    """
    fn = _count("leaf_index", leaf_index)
    sn = _count("tree_size", tree_size)
    if fn >= sn:
        raise ValueError(f"leaf index {fn} is outside a tree of size {sn}")
    r = _hash("leaf_hash", leaf_hash)
    path = _path(proof)
    sides, rest = _sides(fn, sn - 1, len(path))
    if len(sides) < len(path):
        raise ValueError("inclusion proof is too long")
    if rest != 0:
        raise ValueError("inclusion proof is too short")
    sha = hashlib.sha256
    for p, left in zip(path, sides, strict=True):
        r = sha(NODE_PREFIX + p + r if left else NODE_PREFIX + r + p).digest()
    return r


def _sides(fn: int, sn: int, count: int) -> tuple[list[bool], int]:
    """The walk of RFC 9162 (sections 2.1.3.2 and 2.1.4.2) from node ``fn`` up a tree
    whose last node on that level is ``sn``: for each of at most ``count`` proof
    hashes, whether it is a left sibling (hashed before the running value).

    Requires ``0 <= fn <= sn``. The walk stops at the root (``sn == 0``), so fewer
    than ``count`` sides mean the proof is too long; the ``sn`` returned is 0 when
    the walk reached the root, and more when the proof is too short.
    """
    sides: list[bool] = []
    while len(sides) < count and sn != 0:
        left = bool(fn & 1) or fn == sn
        # If LSB(fn) is not set, shift until it is or fn is 0.
        while left and not fn & 1 and fn != 0:
            fn >>= 1
            sn >>= 1
        sides.append(left)
        fn >>= 1
        sn >>= 1
    return sides, sn


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return whether ``proof`` shows ``leaf_hash`` at ``leaf_index`` in the tree ``root``.

    RFC 9162 section 2.1.3.2. Never raises: any malformed input (see
    :func:`root_from_inclusion_proof`, and a root that is not 32 bytes) gives
    ``False``. Note that, as in the RFC, a proof binds the tree size only
    through its shape: the caller must take ``tree_size`` and ``root`` from the
    same tree head.
    """
    if not _is_hash(root):
        return False
    try:
        computed = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof)
    except ValueError:
        return False
    return computed == root


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> bool:
    """Return whether ``proof`` shows that tree ``root1`` of ``size1`` leaves prefixes ``root2``.

    RFC 9162 section 2.1.4.2 for ``0 < size1 < size2``. The edges, as the
    published test vectors require:

    * ``size1 == size2``: the proof must be empty and ``root1 == root2`` (both
      ``bytes``; nothing is hashed, so their length is not checked);
    * ``size1 == 0``: always ``False`` (the empty tree is a prefix of every
      tree, so the check proves nothing and is refused);
    * ``size1 > size2``, sizes that are bools, not ints or outside ``[0, 2**64)``,
      proof hashes or (for ``size1 < size2``) roots that are not 32-byte
      ``bytes``, proofs too short or too long: ``False``.

    Never raises.
    """
    try:
        fn = _count("size1", size1)
        sn = _count("size2", size2)
        path = _path(proof)
    except ValueError:
        return False
    if not isinstance(root1, bytes) or not isinstance(root2, bytes):
        return False
    if fn == 0 or fn > sn:
        return False
    if fn == sn:
        return not path and root1 == root2
    if len(root1) != HASH_SIZE or len(root2) != HASH_SIZE:
        return False
    # 1. An empty proof fails.
    if not path:
        return False
    # 2. If size1 is an exact power of 2, prepend root1.
    if (fn & (fn - 1)) == 0:
        path.insert(0, root1)
    # 3. fn = size1 - 1, sn = size2 - 1.
    fn -= 1
    sn -= 1
    # 4. Shift both right while LSB(fn) is set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    sha = hashlib.sha256
    # 6. Fold in every further value (a path longer than the walk fails).
    sides, rest = _sides(fn, sn, len(path) - 1)
    if len(sides) < len(path) - 1:
        return False
    for c, left in zip(path[1:], sides, strict=True):
        if left:
            fr = sha(NODE_PREFIX + c + fr).digest()
            sr = sha(NODE_PREFIX + c + sr).digest()
        else:
            sr = sha(NODE_PREFIX + sr + c).digest()
    # 7. Both roots must match and the path must have been used up exactly.
    return rest == 0 and fr == root1 and sr == root2


# --------------------------------------------------------------------------- appending


def extend(
    size: int, frontier_hashes: Sequence[bytes], new_leaves: Sequence[bytes]
) -> dict[Node, bytes]:
    """Return every perfect subtree of level >= 1 completed by appending ``new_leaves``.

    ``frontier_hashes`` are the hashes of ``frontier(size)``, in that order;
    ``new_leaves`` are the leaf hashes appended at positions ``size``,
    ``size + 1``, ... Each node that is complete after the append and was not
    before comes back exactly once (a tree of ``size`` leaves has ``size -
    popcount(size)`` nodes of level >= 1). Works like a binary counter over the
    frontier, in ``O(k + log size)`` hashes and steps for ``k`` new leaves.
    ``ValueError`` when the frontier does not have one hash per node.
    """
    size = _count("size", size)
    expected = size.bit_count()
    if len(frontier_hashes) != expected:
        raise ValueError(
            f"a tree of size {size} has {expected} frontier nodes, "
            f"got {len(frontier_hashes)} hashes"
        )
    # Stack of the current frontier, largest (leftmost) first; levels strictly decrease.
    levels = [level for level, _ in frontier(size)]
    hashes = list(frontier_hashes)
    created: dict[Node, bytes] = {}
    sha = hashlib.sha256
    pos = size
    for h in new_leaves:
        level, index = 0, pos
        pos += 1
        while levels and levels[-1] == level:
            levels.pop()
            h = sha(NODE_PREFIX + hashes.pop() + h).digest()
            level += 1
            index >>= 1
            created[(level, index)] = h
        levels.append(level)
        hashes.append(h)
    return created


# --------------------------------------------------------------------------- validation


def _count(name: str, value: object) -> int:
    """Return ``value`` if it is an int (not a bool) in ``[0, 2**64)``, else raise ``ValueError``.

    RFC 9162 sizes and indices are 64-bit; the bound also keeps the bit loops
    of the verifiers short whatever they are given.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    if value > _MAX_COUNT:
        raise ValueError(f"{name} must be below 2**64, got {value}")
    return value


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _hash(name: str, value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be {HASH_SIZE} bytes")
    return value


def _path(proof: object) -> list[bytes]:
    """Return the proof as a list of 32-byte hashes, or raise ``ValueError``."""
    if isinstance(proof, (str, bytes, bytearray, memoryview)) or not isinstance(proof, Sequence):
        raise ValueError("a proof must be a sequence of hashes")
    path = list(proof)
    for i, item in enumerate(path):
        _hash(f"proof[{i}]", item)
    return path
