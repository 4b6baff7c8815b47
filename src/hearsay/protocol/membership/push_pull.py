"""Push-pull: whole member tables exchanged on joining and now and then (memberlist's push-pull).

Why this module exists: scuttlebutt digests carry a few dozen members per datagram, and a
member learned from them is pinged before it is used, so a node joining a cluster of 1,000
learned its view one member at a time (tens of thousands of datagrams per second across the
cluster while it formed). A push-pull sends every member's full state at once, in chunks that
each fit a datagram, and the answer to a push-pull we asked for vouches for the members it
brings: they are used at once (probing, round-robin, says otherwise soon enough). This module
owns when to push-pull and with whom, and which answers we asked for; packing the table and
merging it is the facade's (:mod:`.facade`), with the same delta rules as every sync.

- Joining: after :meth:`PushPullPlan.join` a node sends its table to one random seed, asking
  for the seed's, and again to another every :data:`JOIN_RETRY_MS` until an answer arrives.
- Then :data:`SEED_ROUNDS` more with a random seed, each 1-2 :data:`AFTER_JOIN_MS` after the
  last answer: a node that joined among the first got a small table, and by then the seeds
  hold the tables of everyone who joined through them (each joiner's request brought its own
  state) and of each other.
- Then every ``push_pull_interval_for(N)`` (memberlist's interval, scaled with the cluster)
  with one random live member.
- A request spans several chunks, each asking for an answer: we answer a sender once per
  :data:`REPLY_GAP_MS`.
"""

from __future__ import annotations

from typing import Final

from hearsay.protocol.membership.wire import Address

JOIN_RETRY_MS: Final = 2_000
"""A join's push-pull unanswered this long is sent to another seed."""
REPLY_WAIT_MS: Final = 2_000
"""An answer to our push-pull is taken as vouched for this long after we asked."""
REPLY_GAP_MS: Final = 1_000
"""A sender's request is answered at most once per this (its chunks all ask)."""
AFTER_JOIN_MS: Final = 1_000
"""The push-pulls with seeds after a join come 1-2 times this after the last answer."""
SEED_ROUNDS: Final = 2
"""Push-pulls with a seed after the join's (see the module docstring)."""
ASKED_MAX: Final = 64
REPLIED_MAX: Final = 4_096
CHUNKS_MAX: Final = 256
"""Chunks of one table sent at once (about 4,000 members at 16-hex ids): a larger table goes
out as a random part of it, and the rest arrives with later exchanges and syncs."""

NEVER: Final = 2**63 - 1


class PushPullPlan:
    """When the next push-pull is due and with whom, and whom we asked (their answers vouch
    for the members they bring)."""

    def __init__(self) -> None:
        self.join_pending = False
        """A join's push-pull is not answered yet."""
        self.seed_rounds_left = 0
        """Push-pulls with a seed still to come after the join's."""
        self.next_join_ms = NEVER
        self.next_periodic_ms = NEVER
        """Planned once the join is answered."""
        self._awaiting = False
        """Our last push-pull is not answered yet (the first chunk of an answer plans the
        next one; the others only bring members)."""
        self._asked: dict[Address, int] = {}
        """Address -> until when its answer counts as asked for."""
        self._replied: dict[str, int] = {}
        """Sender -> when we last answered its request."""

    @property
    def with_seed(self) -> bool:
        """Whether the next push-pull goes to a seed (a join, or the rounds after it)."""
        return self.join_pending or self.seed_rounds_left > 0

    @property
    def deadline_ms(self) -> int:
        return self.next_join_ms if self.join_pending else self.next_periodic_ms

    def join(self, now_ms: int) -> None:
        """Seeds were given: push-pull with one of them now."""
        if not self.join_pending:
            self.join_pending = True
            self.seed_rounds_left = SEED_ROUNDS
            self.next_join_ms = now_ms

    def asking(self, address: Address, now_ms: int, interval_ms: int) -> None:
        """We send ``address`` our table and ask for its own (again after
        :data:`JOIN_RETRY_MS` with a seed if unanswered; else one interval on)."""
        if self.join_pending:
            self.next_join_ms = now_ms + JOIN_RETRY_MS
        elif self.seed_rounds_left > 0:
            self.next_periodic_ms = now_ms + JOIN_RETRY_MS
        else:
            self.next_periodic_ms = now_ms + interval_ms
        self._awaiting = True
        if len(self._asked) >= ASKED_MAX:
            self._asked = {a: t for a, t in self._asked.items() if t > now_ms}
            if len(self._asked) >= ASKED_MAX:
                del self._asked[next(iter(self._asked))]
        self._asked[address] = now_ms + REPLY_WAIT_MS

    def is_answer(self, source: Address | None, now_ms: int) -> bool:
        """Whether a chunk from ``source`` answers a push-pull we asked for lately."""
        if source is None:
            return False
        until = self._asked.get(source)
        return until is not None and now_ms <= until

    def answered(self, now_ms: int, fraction: float, interval_ms: int) -> None:
        """A chunk of an answer arrived: the first one plans the next push-pull (soon, at
        ``fraction`` in [0, 1) of a second window, while rounds with seeds are left)."""
        if not self._awaiting:
            return
        self._awaiting = False
        if self.join_pending:
            self.join_pending = False
            self.next_join_ms = NEVER
        elif self.seed_rounds_left > 0:
            self.seed_rounds_left -= 1
        if self.seed_rounds_left > 0:
            self.next_periodic_ms = now_ms + int(AFTER_JOIN_MS * (1 + fraction))
        else:
            self.next_periodic_ms = now_ms + interval_ms

    def should_reply(self, sender: str, now_ms: int) -> bool:
        """Whether to answer ``sender``'s request now (once per :data:`REPLY_GAP_MS`)."""
        last = self._replied.get(sender)
        if last is not None and now_ms - last < REPLY_GAP_MS:
            return False
        if len(self._replied) >= REPLIED_MAX:
            self._replied.clear()
        self._replied[sender] = now_ms
        return True
