"""The cuckoo filter's writes one item at a time, read straight from the slices: the scalar
reference the batched view (``CuckooFilter.add_items`` / ``delete_items``) is held to.

It reads every bucket afresh from the slices for each item (a window per slice) and returns
the item's pairs, which the caller merges before the next item: the rules of
``hearsay.sketch.cuckoo`` spelt out the slow way (hashing, places, sub-filters, clipping).
"""

from __future__ import annotations

from hearsay.lattice.vector import INDEX_LIMIT, MaxVector
from hearsay.sketch.cuckoo import ADDED, COUNT_CLIP, FILTERS_MAX, FINGERPRINTS, FULL, PRESENT
from hearsay.sketch.hashing import member_hash, mix64_int

Slices = dict[str, MaxVector]
ItemPairs = tuple[list[int], list[int]]


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class ScalarCuckoo:
    """One filter's parameters and its item-at-a-time rules."""

    def __init__(self, capacity: int, bucket_size: int, expansion: int) -> None:
        self.bucket_size = bucket_size
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
        h = member_hash(item)
        fp = (h >> 32) % 255 + 1
        alt = mix64_int(fp, 1)
        places: list[tuple[int, int]] = []
        for sub in range(min(subs, len(self.buckets))):
            mask = self.buckets[sub] - 1
            first = h & mask
            places.append((sub, first))
            second = first ^ (alt & mask)
            if second != first:
                places.append((sub, second))
        return fp, places

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

    def occupied(self, slices: Slices, sub: int, bucket: int) -> int:
        first = self.pair(sub, bucket, 0)
        return sum(max(0, self.net(slices, first + fp)) for fp in range(FINGERPRINTS))

    def exists(self, slices: Slices, item: bytes) -> bool:
        fp, places = self.places(item, self.filters(slices))
        return any(self.net(slices, self.pair(sub, b, fp)) > 0 for sub, b in places)

    def add(
        self, slices: Slices, origin: str, item: bytes, only_new: bool
    ) -> tuple[int, ItemPairs]:
        if only_new and self.exists(slices, item):
            return PRESENT, ([], [])
        own = slices.get(origin) or MaxVector()
        fp, places = self.places(item, self.filters(slices) + 1)
        for sub, bucket in places:
            if self.occupied(slices, sub, bucket) >= self.bucket_size:
                continue
            pair = self.pair(sub, bucket, fp)
            deficit = max(0, -self.net(slices, pair))
            return ADDED, ([2 * pair], [min(own.get(2 * pair), COUNT_CLIP) + 1 + deficit])
        return FULL, ([], [])

    def delete(self, slices: Slices, origin: str, item: bytes) -> tuple[bool, ItemPairs]:
        own = slices.get(origin) or MaxVector()
        fp, places = self.places(item, self.filters(slices))
        for sub, bucket in reversed(places):
            pair = self.pair(sub, bucket, fp)
            if self.net(slices, pair) > 0:
                return True, ([2 * pair + 1], [min(own.get(2 * pair + 1), COUNT_CLIP) + 1])
        return False, ([], [])
