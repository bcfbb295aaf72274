"""The RFC 6962 / RFC 9162 Merkle tree over the ledger's entries, its proofs and its right edge.

Each entry's stored hash is already a leaf of this tree (SHA-256(0x00 || body), see ``canonical``);
an inner node is SHA-256(0x01 || left || right), a tree of n > 1 leaves splits at the largest power
of two below n, and the empty tree's root is SHA-256(""). Everything here works on raw 32-byte
hashes, and every rejection is a ``ProofError`` that names the check that failed::

    >>> from otel_execaudit.ledger.canonical import leaf_hash
    >>> leaves = [leaf_hash(bytes([number])) for number in range(5)]
    >>> verify_inclusion(leaves[3], 3, 5, inclusion_proof(leaves, 3), root(leaves))
    >>> verify_consistency(2, 5, consistency_proof(leaves, 2), root(leaves[:2]), root(leaves))
    >>> frontier = CompactRange()
    >>> frontier.extend(leaves)
    >>> frontier.root() == root(leaves), frontier.end, len(frontier.hashes)
    (True, 5, 2)

Proofs are generated as RFC 9162 §2.1.3.1 and §2.1.4.1 define them and verified with the
algorithms of §2.1.3.2 and §2.1.4.2. ``CompactRange`` is the list of perfect subtrees that cover a
range of leaves, as in transparency-dev/merkle's ``compact.Range``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from otel_execaudit.errors import ProofError

__all__ = ["EMPTY_ROOT", "CompactRange", "consistency_proof", "inclusion_proof", "node_hash", "root",
           "root_from_inclusion", "verify_consistency", "verify_inclusion"]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree of no leaves: SHA-256 of the empty string."""

_sha256 = hashlib.sha256
_NODE_PREFIX = b"\x01"


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the inner node SHA-256(0x01 || left || right). Example: ``node_hash(leaf0, leaf1)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of these leaf hashes. Example: ``root([]) == EMPTY_ROOT``."""
    _check_leaves(leaves)
    return _subtree_root(list(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return PATH(index, leaves), bottom up (RFC 9162 §2.1.3.1). Example: ``inclusion_proof(leaves, 3)``."""
    size = len(leaves)
    if not _is_count(index) or index >= size:
        raise ProofError(f"inclusion proof: index {index!r} is not a leaf of a tree of size {size}")
    _check_leaves(leaves)
    # Walk from the root towards the leaf; each step's sibling subtree is one proof element.
    siblings, begin, end = [], 0, size
    while end - begin > 1:
        middle = begin + _split(end - begin)
        if index < middle:
            siblings.append((middle, end))
            end = middle
        else:
            siblings.append((begin, middle))
            begin = middle
    return [_subtree_root(leaves[low:high]) for low, high in reversed(siblings)]


def consistency_proof(leaves: Sequence[bytes], size1: int) -> list[bytes]:
    """Return PROOF(size1, leaves) (RFC 9162 §2.1.4.1). Example: ``consistency_proof(leaves, 2)``."""
    size2 = len(leaves)
    if not _is_count(size1) or not 0 < size1 <= size2:
        raise ProofError(f"consistency proof: size1 {size1!r} is not in 1..{size2} (the tree's size)")
    _check_leaves(leaves)
    # SUBPROOF(m, D[begin:end], whole), unrolled: the subtrees it appends, top down.
    subtrees, begin, end, whole = [], 0, size2, True
    while size1 - begin != end - begin:
        middle = begin + _split(end - begin)
        if size1 <= middle:
            subtrees.append((middle, end))
            end = middle
        else:
            subtrees.append((begin, middle))
            begin, whole = middle, False
    if not whole:
        subtrees.append((begin, end))
    return [_subtree_root(leaves[low:high]) for low, high in reversed(subtrees)]


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root an inclusion proof leads to. Example: ``root_from_inclusion(leaf, 3, 5, proof)``."""
    if not _is_count(size) or not _is_count(index) or index >= size:
        raise ProofError(f"inclusion: index {index!r} is not a leaf of a tree of size {size!r}")
    _check_hash(leaf, "inclusion: the leaf hash")
    _check_proof(proof, "inclusion")
    node, position, last = leaf, index, size - 1
    for element in proof:
        if last == 0:
            raise ProofError(f"inclusion: the proof ({len(proof)} hashes) is too long for leaf {index} of {size}")
        if position & 1 or position == last:
            node = _sha256(_NODE_PREFIX + element + node).digest()
            while not position & 1 and position:  # skip the levels where this node has no right sibling
                position, last = position >> 1, last >> 1
        else:
            node = _sha256(_NODE_PREFIX + node + element).digest()
        position, last = position >> 1, last >> 1
    if last != 0:
        raise ProofError(f"inclusion: the proof ({len(proof)} hashes) is too short for leaf {index} of {size}")
    return node


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of tree ``root``. Example: ``verify_inclusion(leaf, 3, 5, p, r)``."""
    _check_hash(root, "inclusion: the root")
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise ProofError(f"inclusion: the proof for leaf {index} of {size} does not lead to the given root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that tree ``root1`` is a prefix of ``root2``. Example: ``verify_consistency(2, 5, p, r1, r2)``."""
    if not _is_count(size1) or not _is_count(size2) or size1 > size2:
        raise ProofError(f"consistency: sizes {size1!r} and {size2!r} are not 0 < size1 <= size2")
    if size1 == 0:
        raise ProofError("consistency: size1 is 0, and RFC 9162 defines no proof from the empty tree")
    if size1 == size2:  # as the reference verifiers: the roots are compared as given
        if proof:
            raise ProofError(f"consistency: sizes are equal ({size1}) but the proof is not empty")
        if root1 != root2:
            raise ProofError(f"consistency: sizes are equal ({size1}) but the roots differ")
        return
    _check_hash(root1, "consistency: root1")
    _check_hash(root2, "consistency: root2")
    _check_proof(proof, "consistency")
    if not proof:
        raise ProofError(f"consistency: the proof from size {size1} to {size2} is empty")
    # When size1 is a power of two the old tree is itself a node of the new one, and its root starts the path.
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    first, last = size1 - 1, size2 - 1
    while first & 1:
        first, last = first >> 1, last >> 1
    old = new = path[0]
    for element in path[1:]:
        if last == 0:
            raise ProofError(f"consistency: the proof ({len(proof)} hashes) is too long for {size1} to {size2}")
        if first & 1 or first == last:
            old = _sha256(_NODE_PREFIX + element + old).digest()
            new = _sha256(_NODE_PREFIX + element + new).digest()
            while not first & 1 and first:
                first, last = first >> 1, last >> 1
        else:
            new = _sha256(_NODE_PREFIX + new + element).digest()
        first, last = first >> 1, last >> 1
    if last != 0:
        raise ProofError(f"consistency: the proof ({len(proof)} hashes) is too short for {size1} to {size2}")
    if old != root1:
        raise ProofError(f"consistency: the proof does not lead to root1 (the root given for size {size1})")
    if new != root2:
        raise ProofError(f"consistency: the proof does not lead to root2 (the root given for size {size2})")


class CompactRange:
    """The perfect subtrees covering leaves [begin, end), left to right: O(log n) hashes.

    With ``begin == 0`` it is the right edge of the tree of ``end`` leaves and gives its root; two
    adjacent ranges (hashed apart, in separate processes say) merge into one. It is rebuilt from
    ``CompactRange(begin, hashes, end)`` and pickles as exactly that::

        >>> a, b, c, d = (bytes([byte]) * 32 for byte in range(4))
        >>> left, right = CompactRange(), CompactRange(begin=3)
        >>> left.extend([a, b, c]); right.append(d)
        >>> left.merge(right)
        >>> left.end, left.root() == root([a, b, c, d]), len(left.hashes)
        (4, True, 1)
    """

    __slots__ = ("_begin", "_end", "_hashes")

    def __init__(self, begin: int = 0, hashes: Iterable[bytes] = (), end: int | None = None) -> None:
        hashes = list(hashes)
        end = begin if end is None else end
        if not _is_count(begin) or not _is_count(end) or end < begin:
            raise ProofError(f"compact range: [{begin!r}, {end!r}) is not a range of leaf positions")
        if len(hashes) != (count := len(_levels(begin, end))):
            raise ProofError(f"compact range: [{begin}, {end}) needs {count} hashes, not {len(hashes)}")
        for number, value in enumerate(hashes):
            _check_hash(value, f"compact range: hash {number}")
        self._begin, self._end, self._hashes = begin, end, hashes

    @property
    def begin(self) -> int:
        """The first leaf position covered. Example: ``CompactRange(begin=7).begin == 7``."""
        return self._begin

    @property
    def end(self) -> int:
        """One past the last leaf position covered. Example: ``CompactRange().end == 0``."""
        return self._end

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree roots, left to right. Example: ``CompactRange(0, saved.hashes, saved.end)``."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add the leaf at position ``end``, O(1) amortised. Example: ``frontier.append(leaf_hash(body))``."""
        if len(leaf) != HASH_SIZE:
            _check_hash(leaf, f"compact range: leaf {self._end}")
        self._push(leaf, 0)

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append each leaf in order. Example: ``frontier.extend(bytes.fromhex(e.hash) for e in entries)``."""
        append = self.append
        for leaf in leaves:
            append(leaf)

    def merge(self, other: CompactRange) -> None:
        """Extend by the adjacent range ``other`` (``other.begin == end``). Example: ``left.merge(right)``."""
        if other._begin != self._end:
            raise ProofError(f"compact range: [{other._begin}, {other._end}) does not start at {self._end}")
        for node, level in zip(list(other._hashes), _levels(other._begin, other._end)):
            self._push(node, level)  # other's subtrees are aligned, so each joins like 2**level leaves

    def _push(self, node: bytes, level: int) -> None:
        """Add the perfect subtree of height ``level`` whose leaves start at ``end``."""
        hashes, begin, index = self._hashes, self._begin, self._end >> level
        self._end += 1 << level
        while index & 1 and (index - 1) << level >= begin:  # its left sibling is in the range: join it
            node = _sha256(_NODE_PREFIX + hashes.pop() + node).digest()
            index >>= 1
            level += 1
        hashes.append(node)

    def root(self) -> bytes:
        """Return the root of the tree of ``end`` leaves (needs ``begin == 0``). Example: ``frontier.root()``."""
        if self._begin != 0:
            raise ProofError(f"compact range: [{self._begin}, {self._end}) has no root, not starting at 0")
        hashes = self._hashes
        node = hashes[-1] if hashes else EMPTY_ROOT
        for left in reversed(hashes[:-1]):
            node = _sha256(_NODE_PREFIX + left + node).digest()
        return node

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self._begin, self._end, self._hashes) == (other._begin, other._end, other._hashes)

    __hash__ = None  # mutable, so not hashable

    def __repr__(self) -> str:
        return f"CompactRange(begin={self._begin}, end={self._end}, hashes=<{len(self._hashes)}>)"

    def __reduce__(self):
        return CompactRange, (self._begin, tuple(self._hashes), self._end)


def _subtree_root(level: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, level by level: pair neighbours, carry an odd last node up."""
    if not level:
        return EMPTY_ROOT
    sha256, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        carried = level[-1] if len(level) & 1 else None
        pairs = iter(level)
        level = [sha256(prefix + left + right).digest() for left, right in zip(pairs, pairs)]
        if carried is not None:
            level.append(carried)
    return level[0]


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size >= 2``)."""
    return 1 << ((size - 1).bit_length() - 1)


def _levels(begin: int, end: int) -> list[int]:
    """The heights of the largest aligned subtrees that cover [begin, end), left to right."""
    levels = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        levels.append(level)
        begin += 1 << level
    return levels


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        size = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash ({size})")


def _check_proof(proof: Sequence[bytes], what: str) -> None:
    for number, element in enumerate(proof):
        _check_hash(element, f"{what}: proof element {number}")


def _check_leaves(leaves: Sequence[bytes]) -> None:
    if set(map(len, leaves)) - {HASH_SIZE}:
        number = next(number for number, leaf in enumerate(leaves) if len(leaf) != HASH_SIZE)
        _check_hash(leaves[number], f"leaf {number}")
