"""BF.ADD / MADD / INSERT replies from a :class:`BloomAdds`, for plain and windowed filters:
1 or 0 per item, RedisBloom's error at a refused one (a full filter), runs cut per call."""

from __future__ import annotations

from hearsay.engine.families.bloom import BloomAdds
from hearsay.resp import messages
from hearsay.resp.replies import ErrorReply, Reply

__all__ = ["answers", "full_message", "per_call"]


def full_message(adds: BloomAdds) -> str:
    return messages.BF_CANNOT_GROW if adds.scaling else messages.BF_FULL


def answers(adds: BloomAdds, items: list[bool | None]) -> list[Reply]:
    """One call's reply to BF.MADD / BF.INSERT: 1 or 0 per item up to a refused one, which
    is RedisBloom's error, and nothing after it (RedisBloom stops the call there)."""
    out: list[Reply] = []
    for flag in items:
        if flag is None:
            out.append(ErrorReply(full_message(adds)))
            break
        out.append(int(flag))
    return out


def per_call(run: list[list[bytes]], adds: BloomAdds, single: bool) -> list[Reply]:
    """``adds`` (one answer per item of the run, in order) cut back into one reply per call.

    The calls after a refused item answer as they would alone: a filter that refused an item
    is full for good, so every later new item is refused and nothing later was written."""
    out: list[Reply] = []
    at = 0
    for args in run:
        end = at + len(args) - 2
        answered = answers(adds, adds.added[at:end])
        out.append(answered[0] if single else answered)
        at = end
    return out
