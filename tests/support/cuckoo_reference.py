"""The cuckoo filter's writes one item at a time, read straight from the slices: the scalar
reference the batched view (``CuckooFilter.add_items`` / ``delete_items``) is held to.

It reads every bucket afresh from the slices for each item (a window per slice) and returns
the item's pairs, which the caller merges before the next item: the rules of
``hearsay.sketch.cuckoo`` spelt out the slow way (hashing, places, sub-filters, clipping, an
item's copies counted over both its buckets, relocation when no place has room).
"""

from __future__ import annotations

from hearsay.lattice.vector import INDEX_LIMIT, MaxVector
from hearsay.sketch.cuckoo import (
    ADDED,
    COUNT_CLIP,
    FILTERS_MAX,
    FINGERPRINTS,
    FULL,
    MOVES_SLOT,
    PRESENT,
)
from hearsay.sketch.hashing import member_hash, mix64_int

Slices = dict[str, MaxVector]
ItemPairs = tuple[list[int], list[int]]


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class ScalarCuckoo:
    """One filter's parameters and its item-at-a-time rules."""

    def __init__(
        self, capacity: int, bucket_size: int, expansion: int, max_iterations: int = 20
    ) -> None:
        self.bucket_size = bucket_size
        self.max_iterations = max_iterations
        growth = _next_pow2(expansion) if expansion else 0
        first = _next_pow2(max(1, capacity // bucket_size))
        self.buckets: list[int] = []
        self.bases: list[int] = []
        base = 0
        for sub in range(FILTERS_MAX if growth else 1):
            buckets = first * growth**sub if sub else first
            if (base + buckets * FINGERPRINTS) * 2 > INDEX_LIMIT:
                break
            self.buckets.append(buckets)
            self.bases.append(base)
            base += buckets * FINGERPRINTS

    def places(self, item: bytes, subs: int) -> tuple[int, list[tuple[int, int]]]:
        fp, classes = self.classes(item, subs)
        places: list[tuple[int, int]] = []
        for sub, first, second in classes:
            places.append((sub, first))
            if second != first:
                places.append((sub, second))
        return fp, places

    def classes(self, item: bytes, subs: int) -> tuple[int, list[tuple[int, int, int]]]:
        """The item's fingerprint and, per sub-filter, its two buckets (equal when its
        partner is its first bucket)."""
        h = member_hash(item)
        fp = (h >> 32) % 255 + 1
        out: list[tuple[int, int, int]] = []
        for sub in range(min(subs, len(self.buckets))):
            first = h & (self.buckets[sub] - 1)
            out.append((sub, first, self.partner(sub, first, fp)))
        return fp, out

    def partner(self, sub: int, bucket: int, fp: int) -> int:
        return bucket ^ (mix64_int(fp, 1) & (self.buckets[sub] - 1))

    def pair(self, sub: int, bucket: int, fp: int) -> int:
        return self.bases[sub] + bucket * FINGERPRINTS + fp

    def filters(self, slices: Slices) -> int:
        top = -1
        for vec in slices.values():
            for index, _ in vec.items():
                top = max(top, index // 2)
        if top < 0:
            return 1
        return sum(1 for base in self.bases if base <= top)

    def net(self, slices: Slices, pair: int) -> int:
        adds = sum(min(vec.get(2 * pair), COUNT_CLIP) for vec in slices.values())
        dels = sum(min(vec.get(2 * pair + 1), COUNT_CLIP) for vec in slices.values())
        return adds - dels

    def copies(self, slices: Slices, sub: int, bucket: int, fp: int) -> int:
        """Adds minus deletes of ``fp`` over both its buckets in ``sub`` (may be negative): a
        copy relocated to the other bucket is still one copy."""
        first = self.net(slices, self.pair(sub, bucket, fp))
        other = self.partner(sub, bucket, fp)
        return first if other == bucket else first + self.net(slices, self.pair(sub, other, fp))

    def occupied(self, slices: Slices, sub: int, bucket: int) -> int:
        first = self.pair(sub, bucket, 0)
        return sum(max(0, self.net(slices, first + fp)) for fp in range(FINGERPRINTS))

    def exists(self, slices: Slices, item: bytes) -> bool:
        fp, classes = self.classes(item, self.filters(slices))
        return any(self.copies(slices, sub, first, fp) > 0 for sub, first, _ in classes)

    def count(self, slices: Slices, item: bytes) -> int:
        fp, classes = self.classes(item, self.filters(slices))
        return sum(max(0, self.copies(slices, sub, first, fp)) for sub, first, _ in classes)

    def add(
        self, slices: Slices, origin: str, item: bytes, only_new: bool
    ) -> tuple[int, ItemPairs]:
        if only_new and self.exists(slices, item):
            return PRESENT, ([], [])
        own = slices.get(origin) or MaxVector()
        subs = self.filters(slices)
        fp, places = self.places(item, subs)
        raised: dict[int, int] = {}
        for sub, bucket in places:  # a place with room, oldest sub-filter first
            if self.occupied(slices, sub, bucket) < self.bucket_size:
                self._add_copy(slices, sub, bucket, fp, raised)
                return ADDED, _own_pairs(own, raised)
        last = min(subs, len(self.buckets)) - 1
        kicked = self._relocate(slices, last, places, fp, item)
        if kicked is not None:
            return ADDED, _own_pairs(own, kicked)
        if subs < len(self.buckets):  # a new sub-filter: empty
            new_sub, first, _ = self.classes(item, subs + 1)[1][-1]
            self._add_copy(slices, new_sub, first, fp, raised)
            return ADDED, _own_pairs(own, raised)
        return FULL, ([], [])

    def _add_copy(
        self, slices: Slices, sub: int, bucket: int, fp: int, raised: dict[int, int]
    ) -> None:
        deficit = max(0, -self.copies(slices, sub, bucket, fp))
        slot = 2 * self.pair(sub, bucket, fp)
        raised[slot] = raised.get(slot, 0) + 1 + deficit

    def _relocate(
        self, slices: Slices, sub: int, places: list[tuple[int, int]], fp: int, item: bytes
    ) -> dict[int, int] | None:
        """RedisBloom's eviction in the last sub-filter: the item's fingerprint takes the place
        of a victim in its first bucket, the victim moves to its partner bucket, and so on
        (the victim of move ``j`` copy ``mix64(h, 2 + j)`` of the bucket in fingerprint
        order, modulo its copies) until a bucket has room: the raised counts, or None after
        ``max_iterations`` moves (nothing written)."""
        work = {name: vec.copy() for name, vec in slices.items()}
        scratch = "\x00relocation"
        work[scratch] = MaxVector()
        raised: dict[int, int] = {}

        def bump(slot: int) -> None:
            raised[slot] = raised.get(slot, 0) + 1
            work[scratch].merge_pairs([slot], [raised[slot]])

        bucket = next(b for s, b in places if s == sub)
        first_deficit = max(0, -self.copies(slices, sub, bucket, fp))
        current = fp
        h = member_hash(item)
        for step in range(self.max_iterations):
            base = self.pair(sub, bucket, 0)
            nets = [max(0, self.net(work, base + f)) for f in range(FINGERPRINTS)]
            k = mix64_int(h, 2 + step) % sum(nets)  # copy k in fingerprint order
            victim = next(f for f in range(FINGERPRINTS) if (k := k - nets[f]) < 0)
            bump(2 * (base + current))
            if first_deficit:
                for _ in range(first_deficit):
                    bump(2 * (base + current))
                first_deficit = 0
            bump(2 * (base + victim) + 1)
            bucket = self.partner(sub, bucket, victim)
            current = victim
            if self.occupied(work, sub, bucket) < self.bucket_size:
                bump(2 * self.pair(sub, bucket, current))
                raised[MOVES_SLOT] = step + 1  # (its moves, counted for CF.INFO)
                return raised
        return None

    def delete(self, slices: Slices, origin: str, item: bytes) -> tuple[bool, ItemPairs]:
        own = slices.get(origin) or MaxVector()
        fp, classes = self.classes(item, self.filters(slices))
        for sub, first, second in reversed(classes):
            if self.copies(slices, sub, first, fp) <= 0:
                continue
            for bucket in (second, first):  # (a bucket holding a copy: one does)
                pair = self.pair(sub, bucket, fp)
                if self.net(slices, pair) > 0:
                    return True, ([2 * pair + 1], [min(own.get(2 * pair + 1), COUNT_CLIP) + 1])
        return False, ([], [])


def _own_pairs(own: MaxVector, raised: dict[int, int]) -> ItemPairs:
    """The writer's counts raised by ``raised`` (its clipped counts plus the increments)."""
    slots = sorted(raised)
    return slots, [min(own.get(slot), COUNT_CLIP) + raised[slot] for slot in slots]
