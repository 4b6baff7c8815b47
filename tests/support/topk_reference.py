"""HeavyKeeper's rows for one item in Python: the statement ``_heavykeeper.rows`` (C) runs,
step for step, as ``hearsay.sketch.topk`` ran it before it moved to C. The tests hold the C
rows to it (same replies, same slots written in the same order, same decays left)."""

from __future__ import annotations

import math

from hearsay.sketch.hashing import mix64_int
from hearsay.sketch.topk import COUNT_MAX, DECAYS_PER_ROW_MAX, GENERATION_MAX

_LOW32 = 0xFFFFFFFF
_UNIT = 1.0 / (1 << 53)


class Rows:
    """One call's rows over a run's cache (slot -> value) and written pairs."""

    def __init__(self, cache: dict[int, int], decay: float, decays_left: int) -> None:
        self.cache = cache
        self.indices: list[int] = []
        self.values: list[int] = []
        self.decay = decay
        self.powers = [decay**c for c in range(256)]
        self.decays_left = decays_left

    def _put(self, index: int, value: int) -> None:
        if value > self.cache[index]:
            self.cache[index] = value
            self.indices.append(index)
            self.values.append(value)

    def _decay_at(self, count: int) -> float:
        return self.powers[count] if count < 256 else self.decay**count

    def add(self, slots: list[int], fp: int, increment: int, seed: int) -> int:
        """The item's increment through every row: the best count of the rows it holds."""
        best = 0
        for row, slot in enumerate(slots):
            count = self._bucket_add(slot, fp, increment, mix64_int(seed, row + 1))
            if count is not None:
                best = max(best, count)
        return min(best, COUNT_MAX)

    def _bucket_add(self, slot: int, fp: int, increment: int, seed: int) -> int | None:
        cache = self.cache
        fp_value, up_value, down_value = cache[slot], cache[slot + 1], cache[slot + 2]
        generation = fp_value >> 32
        up = up_value & _LOW32 if up_value >> 32 == generation else 0
        down = down_value & _LOW32 if down_value >> 32 == generation else 0
        count = max(up - down, 0)
        newest = max(generation, up_value >> 32, down_value >> 32)
        if generation and (fp_value & _LOW32) == fp:
            if up + increment <= COUNT_MAX:
                self._put(slot + 1, generation << 32 | (up + increment))
                return count + increment
            return self._take(slot, newest, fp, count + increment)
        if count == 0:
            return self._take(slot, newest, fp, increment)
        remaining = increment
        decays = 0
        draw = 0
        cap = min(DECAYS_PER_ROW_MAX, self.decays_left)
        while remaining > 0 and decays < cap:
            p = self._decay_at(count - decays)
            if p >= 1.0:
                trials = min(count - decays, remaining, cap - decays)
                decays += trials - 1
            else:
                draw += 1
                u = (mix64_int(seed, draw) >> 11) * _UNIT
                step = math.log1p(-p)
                failures = math.log1p(-u) / step if step else math.inf
                if failures >= remaining:
                    break
                trials = int(failures) + 1
            remaining -= trials
            decays += 1
            if decays == count:
                self.decays_left -= decays
                return self._take(slot, newest, fp, remaining + 1)
        self.decays_left -= decays
        if decays:
            self._put(slot + 2, generation << 32 | (down + decays))
        return None

    def _take(self, slot: int, newest: int, fp: int, count: int) -> int | None:
        if newest >= GENERATION_MAX:
            return None
        tag = (newest + 1) << 32
        count = min(count, COUNT_MAX)
        self.cache[slot] = tag | fp
        self.cache[slot + 1] = tag | count
        self.indices += (slot, slot + 1)
        self.values += (tag | fp, tag | count)
        return count
