"""The simulator's checkers: they watch, they never steer.

Why this module exists: a checker that shares state with the code it checks can be fooled by
the same bug (TigerBeetle's simulator keeps its checkers apart for this reason). Every class
here is fed observations (a write was acknowledged, a node's entry changed, a node convicted a
peer) and reads keyspaces it is handed; none of them holds a node, the network or a random
stream, and none changes what the simulation does.

- :class:`MonotoneChecker`: no entry on a node ever goes backwards in the lattice order, and
  a crash takes back only what changed within the fsync policy's loss window.
- :class:`EpochBound`: no epoch is further ahead of true time than the skew bound allows (a
  DEL's epoch is the deleting node's clock, an expiry's the deadline it swept at).
- :class:`WriteTracker`: every write, whether and when it was acknowledged, which nodes hold
  it and since when, and one reference keyspace fed every write (the true join); after
  healing, every surviving write on every live node.
- :func:`reply_problem`: a client command answered an error it should not have (a bug in a
  handler answers ``ERR internal error``; the workload's commands are all valid).
- :func:`durability_problems`: at a crash, the disk holds every write the node acknowledged,
  except (``everysec``) those of the last sync interval.
- :func:`convergence_problems`: identical keyspaces on all live nodes, and the answers of
  real read commands on them equal to the reference's.
- :class:`DetectionTracker`: how fast crashed nodes were convicted, and false convictions.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np

from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import FLOOR_KEY, Keyspace
from hearsay.resp.replies import ErrorReply
from hearsay.sim.window_check import WindowRule
from hearsay.sketch.window import WINDOWED_KINDS


def holds(entry: Entry | None, delta: Entry) -> bool:
    """``entry >= delta`` in the lattice order (cheap for the small deltas clients write)."""
    if entry is None:
        return False
    if entry.epoch != delta.epoch:
        return entry.epoch > delta.epoch
    if entry.schema != delta.schema:
        return entry.outranks(delta)
    for origin, vector in delta.slices():
        mine = entry.slice(origin)
        idx, val = vector.pairs()
        for i, v in zip(idx.tolist(), val.tolist(), strict=True):
            if mine.get(i) < v:
                return False
    return True


def floor_of(entries: Callable[[bytes], Entry | None]) -> int:
    """The flush floor a keyspace or a disk holds (its FLUSHALL; 0: none)."""
    floor = entries(FLOOR_KEY)
    return 0 if floor is None else floor.epoch


def superseded(key: bytes, delta: Entry, floor_ms: int) -> bool:
    """Whether a flush floor of ``floor_ms`` took ``delta`` away: a FLUSHALL made after it
    (every entry below the floor is gone, everywhere, for good)."""
    return key != FLOOR_KEY and delta.epoch < floor_ms


def held(entries: Callable[[bytes], Entry | None], key: bytes, delta: Entry, floor_ms: int) -> bool:
    """Whether a keyspace or disk (its look-up, its floor) holds a write: it covers the
    write's delta, or a FLUSHALL it holds superseded it."""
    return superseded(key, delta, floor_ms) or holds(entries(key), delta)


def covers(newer: Entry, older: Entry) -> bool:
    """Monotone check: merging ``older`` into a copy of ``newer`` changes nothing."""
    return not newer.copy().merge(older).changed


class MonotoneChecker:
    """No entry on a node goes backwards, and a crash takes back only its loss window.

    For each node and key it keeps the entries the node showed within the last
    ``loss_window_ms``, and the newest one before: while the node runs, each entry must cover
    the previous one; at a crash, the disk must cover the newest entry shown before the
    window (what a crash may legitimately lose is only what changed within it).
    """

    def __init__(self, loss_window_ms: int, window: WindowRule | None = None) -> None:
        self.loss_window_ms = loss_window_ms
        self.window = window
        """Windowed keys: slices a node may have dropped by then are not asked for."""
        self.shown: dict[tuple[int, bytes], list[tuple[int, Entry]]] = {}
        """(node, key) -> (time shown, entry): the newest entry shown before the window,
        then every entry shown within it."""
        self.violations: list[str] = []

    def observe(self, node: int, key: bytes, entry: Entry, sim_ms: int) -> None:
        shown = self.shown.setdefault((node, key), [])
        if shown and not covers(entry, self._settled(shown[-1][1], sim_ms)):
            self.violations.append(
                f"monotone: node {node} key {key!r} went from {shown[-1][1]} to {entry} "
                f"at {sim_ms} ms"
            )
        shown.append((sim_ms, entry.copy()))
        settled_ms = sim_ms - self.loss_window_ms
        while len(shown) > 1 and shown[1][0] < settled_ms:
            del shown[0]

    def crashed(self, node: int, disk: dict[bytes, Entry], crash_ms: int) -> None:
        """``node`` came down holding ``disk``: it must cover what the node showed before the
        loss window. The node starts afresh from its disk."""
        settled_ms = crash_ms - self.loss_window_ms
        floor_ms = floor_of(disk.get)
        for (n, key), shown in list(self.shown.items()):
            if n != node:
                continue
            at_ms, settled = shown[0]
            kept = disk.get(key)
            settled = self._settled(settled, crash_ms)
            if superseded(key, settled, floor_ms):
                pass  # a FLUSHALL the disk holds took it
            elif at_ms < settled_ms and (kept is None or not covers(kept, settled)):
                self.violations.append(
                    f"monotone: node {node} key {key!r} lost {settled} (shown at {at_ms} ms) "
                    f"in the crash at {crash_ms} ms"
                )
            del self.shown[(n, key)]

    def _settled(self, entry: Entry, sim_ms: int) -> Entry:
        return entry if self.window is None else self.window.settled(entry, sim_ms)


class EpochBound:
    """Every entry a node shows has an epoch at most ``bound_ms(t)`` ahead of true time ``t``.

    Epochs come from clocks (DEL: the deleting node's clock; expiry: the deadline, swept once
    the sweeping node's clock passed it), so a node whose clock is further off than the
    documented skew, or that reads the wrong clock, shows up here. One exception is allowed
    for: a DEL before the key's deadline takes the deadline as its epoch (so a replica that
    expires the old entry cannot outrank a write made after the DEL), so a key's epoch may
    also reach the latest deadline any node showed for it.
    """

    SLACK_MS = 100
    """Room for ``epoch + 1`` steps of repeated deletes within one millisecond."""

    def __init__(self, base_unix_ms: int, bound_ms: Callable[[int], int]) -> None:
        self.base_unix_ms = base_unix_ms
        self.bound_ms = bound_ms
        self.violations: list[str] = []
        self.deadline_ms: dict[bytes, int] = {}
        """The latest deadline any node showed for each key (keys the workload writes)."""
        self.latest_deadline_ms = 0
        self.floor_ms = 0
        """The highest flush floor shown that passed the check (keys created after it start
        at its epoch)."""

    def observe(self, node: int, key: bytes, entry: Entry, sim_ms: int) -> None:
        deadline_ms = max(self.deadline_ms.get(key, 0), entry.expiry[1])
        if deadline_ms:
            self.deadline_ms[key] = deadline_ms
            self.latest_deadline_ms = max(self.latest_deadline_ms, deadline_ms)
        if entry.epoch <= deadline_ms + self.SLACK_MS:
            return  # a DEL before the deadline (or an expiry at it)
        if key != FLOOR_KEY and entry.epoch <= self.floor_ms + self.SLACK_MS:
            return  # a key made (or deleted) at a floor that passed this check
        ahead_ms = entry.epoch - (self.base_unix_ms + sim_ms)
        if key == FLOOR_KEY and (
            ahead_ms <= self.bound_ms(sim_ms) + self.SLACK_MS
            # FLUSHALL's floor is above every epoch its node held, a deadline's included.
            or entry.epoch <= self.latest_deadline_ms + self.SLACK_MS
        ):
            self.floor_ms = max(self.floor_ms, entry.epoch)
            return
        if ahead_ms > self.bound_ms(sim_ms) + self.SLACK_MS:
            self.violations.append(
                f"clock: node {node} key {key!r} has epoch {ahead_ms} ms ahead of true time "
                f"at {sim_ms} ms (skew bound {self.bound_ms(sim_ms)} ms)"
            )


@dataclass(slots=True)
class Write:
    """One write: what grew, when, where, when it was acknowledged (None: never), and which
    nodes hold it since when."""

    key: bytes
    delta: Entry
    at_ms: int
    writer: int
    held_at: dict[int, int] = field(default_factory=dict)
    acked_ms: int | None = None
    lost: bool = False
    """No surviving node holds it (it was never acknowledged, or only nodes that crashed for
    good, lost their disk or lost their last second under ``everysec`` held it)."""
    ended: bool = False
    """A windowed write whose slices died on every clock: no node need hold it any more."""


class WriteTracker:
    """Every write, who holds it, and a reference keyspace fed them all (the true join)."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.pending_by_key: dict[bytes, list[int]] = {}
        self.reference = Keyspace()
        self.lost_in_crashes = 0
        """(node, write) pairs a crash took from a node's memory that its disk lacked."""
        self.windowed: list[int] = []
        """Writes to windowed keys not ended yet (see :meth:`end_windowed`)."""
        self.first_tombstone: dict[tuple[bytes, int], tuple[int, int]] = {}
        """``(key, epoch)`` of every tombstone a node showed -> the first node that showed it
        and when (a tombstone nobody sent it yet: the node made it, e.g. by a TTL)."""
        self.floors: dict[int, int] = {}
        """Each node's flush floor as shown: every write below it is held there (FLUSHALL
        superseded it), including writes made later by a node that had not learned it."""

    def executed(self, key: bytes, delta: Entry, writer: int, sim_ms: int) -> Write:
        """A write ran on ``writer`` (acknowledged later, once durable enough)."""
        self.reference.merge(key, delta)
        self.pending_by_key.setdefault(key, []).append(len(self.writes))
        write = Write(key, delta, sim_ms, writer, {writer: sim_ms})
        for node, floor_ms in self.floors.items():
            if node != writer and superseded(key, delta, floor_ms):
                write.held_at[node] = sim_ms
        if delta.schema is not None and delta.schema.kind in WINDOWED_KINDS:
            self.windowed.append(len(self.writes))
        self.writes.append(write)
        return write

    def end_windowed(self, window: WindowRule, sim_ms: int) -> None:
        """Windowed writes whose slices died on every clock by ``sim_ms`` end."""
        writes = self.writes
        for w in self.windowed:
            writes[w].ended = window.ended(writes[w].delta, sim_ms)
        self.windowed = [w for w in self.windowed if not writes[w].ended]

    def node_crashed(self, node: int, disk: dict[bytes, Entry]) -> None:
        """The node's memory is gone: it now holds only what its disk holds."""
        floor_ms = self.floors[node] = floor_of(disk.get)
        for w in self.writes:
            if node in w.held_at and not held(disk.get, w.key, w.delta, floor_ms):
                del w.held_at[node]
                self.lost_in_crashes += 1

    def observe(self, node: int, key: bytes, entry: Entry, sim_ms: int) -> None:
        if entry.schema is None:
            self.first_tombstone.setdefault((key, entry.epoch), (node, sim_ms))
        if key == FLOOR_KEY and entry.epoch > self.floors.get(node, 0):
            self.floors[node] = entry.epoch
            for write in self.writes:
                if node not in write.held_at and superseded(write.key, write.delta, entry.epoch):
                    write.held_at[node] = sim_ms
        pending = self.pending_by_key.get(key)
        if not pending:
            return
        writes = self.writes
        for w in pending:
            write = writes[w]
            if node not in write.held_at and holds(entry, write.delta):
                write.held_at[node] = sim_ms

    def node_wiped(self, node: int) -> None:
        """The node lost its disk: it holds nothing; a write only it held is lost."""
        self.node_crashed(node, {})
        for w in self.writes:
            if w.writer == node and not w.held_at:
                w.lost = True

    def mark_lost(self, surviving: set[int]) -> None:
        """Writes no surviving node (live, or coming back with its disk) ever held are lost."""
        for w in self.writes:
            if not w.lost and not any(j in surviving for j in w.held_at):
                w.lost = True

    def all_held(self, live: list[int]) -> bool:
        for w in self.writes:
            if w.lost or w.ended:
                continue
            if len(w.held_at) < len(live) and any(j not in w.held_at for j in live):
                return False
        return True

    def convergence_ms(self, live: list[int]) -> tuple[list[int], int]:
        """Per surviving write held everywhere: the time until the last live node held it;
        and how many surviving writes some live node still lacks."""
        times: list[int] = []
        unconverged = 0
        for w in self.writes:
            if w.lost:
                continue
            if all(j in w.held_at for j in live):
                times.append(max(w.held_at[j] for j in live) - w.at_ms)
            elif not w.ended:
                unconverged += 1
        return times, unconverged

    def fractions_over_time(self, live_count: int) -> list[tuple[list[int], list[float]]]:
        """Per write: (ms since the write, fraction of nodes holding it) steps, for plotting."""
        n = live_count or 1
        out: list[tuple[list[int], list[float]]] = []
        for w in self.writes:
            if w.lost:
                continue
            times = sorted(t - w.at_ms for t in w.held_at.values())
            out.append((times, [(k + 1) / n for k in range(len(times))]))
        return out


def reply_problem(
    node: int, args: list[bytes], reply: object, may_fail: frozenset[bytes], sim_ms: int
) -> str | None:
    """An error reply to a command that is not allowed to fail (None: the reply is fine)."""
    if not isinstance(reply, ErrorReply) or args[0] in may_fail:
        return None
    shown = b" ".join(args[:3]).decode(errors="replace")
    return f"reply: node {node} answered {shown!r} with {reply!r} at {sim_ms} ms"


def durability_problems(
    node: int,
    disk: dict[bytes, Entry],
    tracker: WriteTracker,
    *,
    loss_window_ms: int,
    crash_ms: int,
    started_ms: int,
    window: WindowRule | None = None,
) -> list[str]:
    """At a crash of ``node``: every write it acknowledged since it (re)started at
    ``started_ms`` is on its disk, except those acknowledged within ``loss_window_ms``
    before the crash (0 under ``always``), and slices of windowed keys that may have died by
    then (``window``). Earlier writes were judged at earlier crashes."""
    problems: list[str] = []
    for w in tracker.writes:
        if w.writer != node or w.acked_ms is None or w.acked_ms < started_ms:
            continue
        if crash_ms - w.acked_ms <= loss_window_ms:
            continue
        delta = w.delta if window is None else window.settled(w.delta, crash_ms)
        if not held(disk.get, w.key, delta, floor_of(disk.get)):
            problems.append(
                f"durability: node {node} acknowledged a write to {w.key!r} at {w.acked_ms} ms "
                f"and lost it in the crash at {crash_ms} ms"
            )
    return problems


def identical(keyspaces: list[Keyspace]) -> bool:
    """Equal bucket hashes on every keyspace given (the cheap test, run every 250 ms)."""
    first = keyspaces[0].bucket_hashes()
    return all(np.array_equal(first, k.bucket_hashes()) for k in keyspaces[1:])


Answers = dict[bytes, list[object]]
"""Key -> the replies of the workload's read commands for it (PFCOUNT, BF.MEXISTS, ...)."""


def expired_unaware(keyspace: Keyspace, tracker: WriteTracker) -> set[bytes]:
    """Keys ``keyspace`` holds as a tombstone that a TTL made on a node which had not yet
    received a write that would have kept the key: the reference (the join of the writes, in
    which the TTL's end is no write) keeps them, the cluster ends them (remove wins). Two such
    writes exist: an EXPIRE that moved the deadline (made on a node whose clock was behind,
    after the deadline on others'), and a FLUSHALL that took the old key away (docs/design.md,
    "What the floor does not undo"; the key written again since dies by the old TTL).

    Exact, not a tolerance: the tombstone's epoch must be a deadline some write set on the key
    in an older epoch, and the first node that showed it (so the one that expired the key) must
    not have held, at that moment, a later write moving that deadline or a FLUSHALL above the
    key's epoch."""
    floors = [w for w in tracker.writes if w.key == FLOOR_KEY]
    ended: set[bytes] = set()
    for key, numbers in tracker.pending_by_key.items():
        entry = keyspace.entry(key)
        if entry is None or entry.schema is not None:
            continue
        first = tracker.first_tombstone.get((key, entry.epoch))
        writes = [tracker.writes[n] for n in numbers]
        setting = [
            w for w in writes if w.delta.expiry[1] == entry.epoch and w.delta.epoch < entry.epoch
        ]
        if first is None or not setting:
            continue
        node, shown_ms = first
        epoch, stamp = setting[0].delta.epoch, setting[0].delta.expiry[0]
        keeping = [w for w in writes if w.delta.epoch == epoch and w.delta.expiry[0] > stamp]
        keeping += [w for w in floors if w.delta.epoch > epoch]
        # (held from the moment it showed the tombstone on: the tombstone covers the write)
        if any(w.held_at.get(node, shown_ms) >= shown_ms for w in keeping):
            ended.add(key)
    return ended


def convergence_problems(
    keyspaces: list[tuple[int, Keyspace]],
    tracker: WriteTracker,
    answers: Answers,
    reference_answers: Answers,
    ended: AbstractSet[bytes] = frozenset(),
) -> list[str]:
    """Identical entries on every live node, and the read commands' answers on the cluster
    (one live node; the others are identical) equal to the reference's (the join of every
    write), read at the same instant; keys with a legitimately lost write are skipped, and
    keys ``ended`` by a TTL a node could not know was moved (:func:`expired_unaware`)."""
    problems: list[str] = []
    _, first = keyspaces[0]
    for j, other in keyspaces[1:]:
        if first.stored_count != other.stored_count:
            problems.append(f"node {j} holds {other.stored_count} entries")
            break
        for key, entry in first.items():
            if other.entry(key) != entry:
                problems.append(f"node {j} differs on key {key!r}")
                break
    lost_keys = {w.key for w in tracker.writes if w.lost}
    if FLOOR_KEY in lost_keys:
        return problems  # a lost FLUSHALL: the reference flushed what the cluster kept
    for key, expected in reference_answers.items():
        got = answers.get(key)
        if key not in lost_keys and key not in ended and got != expected:
            problems.append(f"key {key!r}: cluster answers {got!r}, reference {expected!r}")
    return problems


def unconverged_problems(tracker: WriteTracker, live: list[int]) -> list[str]:
    """The first few surviving writes some live node still lacks."""
    problems: list[str] = []
    for w in tracker.writes:
        missing = [j for j in live if j not in w.held_at]
        if not w.lost and not w.ended and missing:
            problems.append(
                f"write to {w.key!r} by node {w.writer} at {w.at_ms} ms not held by nodes "
                f"{missing[:8]}"
            )
            if len(problems) == 3:
                break
    return problems


class DetectionTracker:
    """Convictions: how fast each crash was seen by each live observer, and convictions of
    running nodes (false, during a partition, or while the cluster formed)."""

    def __init__(self, dead_timeout_ms: int, warmup_ms: int) -> None:
        self.dead_timeout_ms = dead_timeout_ms
        self.warmup_ms = warmup_ms
        self.detections: list[tuple[int, int, dict[int, int]]] = []
        """(crashed node, crash time, observer -> time it saw the node failed)."""
        self.false_failures = 0
        """Running nodes convicted while no partition could explain it."""
        self.partition_failures = 0
        """Running nodes convicted during (or just after) a partition: correct behaviour."""
        self.warmup_failures = 0
        """Running nodes convicted while the cluster was still forming (before warmup_s)."""

    def crashed(self, node: int, sim_ms: int) -> None:
        self.detections.append((node, sim_ms, {}))

    def convicted(
        self,
        observer: int,
        target: int,
        *,
        running: bool,
        partitioned: bool,
        partition_ended_ms: int | None,
        sim_ms: int,
    ) -> None:
        """``observer`` declared ``target`` failed; ``running``: that incarnation still runs."""
        if running:
            recent_partition = partitioned or (
                partition_ended_ms is not None
                and sim_ms - partition_ended_ms < self.dead_timeout_ms
            )
            if recent_partition:
                self.partition_failures += 1
            elif sim_ms < self.warmup_ms:
                self.warmup_failures += 1
            else:
                self.false_failures += 1
            return
        for crashed, _at, seen in self.detections:
            if crashed == target and observer not in seen:
                seen[observer] = sim_ms

    def figures(
        self, live: list[int], restarted: set[int]
    ) -> tuple[list[int], list[int], int, int]:
        """(slowest observer per fully seen crash, every observer's time, pairs seen, pairs
        expected). A restarted node is expected only of the observers that saw it down."""
        detect: list[int] = []
        pair_times: list[int] = []
        detected_pairs = expected_pairs = 0
        for crashed, at, seen in self.detections:
            if crashed in restarted:
                observers = [j for j in live if j != crashed and j in seen]
            else:
                observers = [j for j in live if j != crashed]
            expected_pairs += len(observers)
            times = [seen[j] - at for j in observers if j in seen]
            pair_times.extend(times)
            detected_pairs += len(times)
            if times and len(times) == len(observers):
                detect.append(max(times))
        return detect, pair_times, detected_pairs, expected_pairs
