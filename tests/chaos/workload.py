"""Clients that write through RESP and remember what was acknowledged; the checker.

Why this module exists: "no acknowledged write is lost" is only testable when every write has
a value the final state can be checked against. The writes here are chosen so that the final
state is exactly predictable from what was acknowledged and what was merely sent:

- ``VMAX v:<client> index value``: each client writes increasing values to indices of its own
  key. In the final state, every index must hold at least the largest acknowledged value (an
  acknowledged write is kept) and at most the largest value sent to it (nothing is invented);
  an index nobody wrote must not exist.
- ``INCRBY c:<client> n``: the final counter lies between the sum of acknowledged increments
  and the sum of all increments sent (an unanswered one may or may not have been applied).
- The sketch families, each client on keys of its own (:data:`SKETCHES`): ``BF.ADD
  b:<client>`` and ``CF.ADD f:<client>`` of items never sent before (every acknowledged one
  must be found; BF.INFO's inserted count is an estimate from the set bits, not checked), and
  ``CF.DEL`` of an item the client added (its node must find it: reply 1; the item need not
  read as absent after, as another may share its fingerprint and bucket): the cuckoo
  filter's deleted count lies between the deletes acknowledged and sent, its inserted count
  (live copies) between the adds acknowledged less the deletes sent and the adds sent less
  the deletes acknowledged; ``TDIGEST.ADD t:<client>`` of distinct values (the observations
  lie between acknowledged and sent, the minimum and maximum between the acknowledged and
  the sent values'); ``CMS.INCRBY m:<client>`` and ``TOPK.ADD k:<client>`` over
  :data:`SKETCH_ITEMS` items (each item's estimate between its acknowledged and sent total,
  and CMS.INFO's count between the increments acknowledged and sent).
  Those two bounds are exact only because the sketches are far from full: 20 items in 2,000
  columns collide with another item in every row of 5 (count-min) or 7 (HeavyKeeper) with a
  chance below 1e-9, and the Top-K lists all 20 items (``k`` = 20), so its counts are its
  buckets' exact increments. ``PFADD h:<client>`` of new members: each register of the HLL
  (GET's bytes) lies between the highest rank of the members acknowledged and sent there
  (Redis's hash, which tests elsewhere hold to Redis's). Windowed Bloom, count-min and Top-K
  keys (``bw:``, ``mw:``, ``kw:``, an hour's window: every write of a run is inside it) are
  held to the same checks. Every node must also hold the same bytes (``DUMP``) of each.
- No key other than these may exist.

A VMAX whose connection failed is retried (bounded) on a new connection, as a client library
would: a retry that is acknowledged counts as acknowledged, so a node that answers retries of
writes it never made durable is caught. The other writes are not idempotent (a second BF.ADD
is, but is not needed) and are never retried; a sketch key that must be created first
(TDIGEST.CREATE, CMS.INITBYDIM, TOPK.RESERVE) is created by its client's first write to it,
retried until a reply says it exists.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hearsay.sketch.hll_math import members_index_rank
from hearsay.sketch.hyll_format import import_redis
from tests.chaos.lab import Lab, LabNode, enter_netns, in_netns

VMAX_INDICES = 64
RETRIES = 3
SOCKET_TIMEOUT_S = 2.0
SKETCH_ITEMS: Final = 20
"""Distinct items of a client's CMS.INCRBY and TOPK.ADD writes."""
CF_DEL_SHARE: Final = 0.3
"""The cuckoo writes that are a CF.DEL of an item the client added (the others CF.ADD)."""


WINDOW: Final = ("WINDOW", 3600, "SLICES", 60)
"""A windowed key's window: an hour of one-minute slices, so every write of a run (minutes)
is inside it and the checks of the plain key hold for the windowed one, over a slice
boundary or two."""


@dataclass(frozen=True)
class Sketch:
    """One sketch key of the workload: its kind (which writes and checks), key prefix, the
    command creating a key (empty: the first write creates it) and its share of the writes."""

    kind: str
    prefix: bytes
    create: tuple[str | int | float, ...]
    share: float


SKETCHES: Final = {
    "bloom": Sketch("bloom", b"b", (), 0.07),
    "cuckoo": Sketch("cuckoo", b"f", (), 0.07),
    "tdigest": Sketch("tdigest", b"t", ("TDIGEST.CREATE",), 0.07),
    "cms": Sketch("cms", b"m", ("CMS.INITBYDIM", 2000, 5), 0.07),
    "topk": Sketch("topk", b"k", ("TOPK.RESERVE", SKETCH_ITEMS, 2000, 7, 0.9), 0.07),
    "bloom-window": Sketch("bloom", b"bw", ("BF.RESERVE", 0.01, 1000, *WINDOW), 0.05),
    "cms-window": Sketch("cms", b"mw", ("CMS.INITBYDIM", 2000, 5, *WINDOW), 0.05),
    "topk-window": Sketch(
        "topk", b"kw", ("TOPK.RESERVE", SKETCH_ITEMS, 2000, 7, 0.9, *WINDOW), 0.05
    ),
    "hll": Sketch("hll", b"h", (), 0.05),
}
"""The sketch writes, after VMAX (30%) and INCRBY (15%): each family, and the windowed
Bloom, count-min and Top-K keys (issue 17) under the same checks."""
ADD_COMMANDS: Final = {
    "bloom": "BF.ADD",
    "cuckoo": "CF.ADD",
    "tdigest": "TDIGEST.ADD",
    "cms": "CMS.INCRBY",
    "topk": "TOPK.ADD",
    "hll": "PFADD",
}
"""Each kind's write of one item (CMS.INCRBY with an amount after it)."""
VMAX_SHARE: Final = 0.30
INCRBY_SHARE: Final = 0.15


@dataclass
class Tally:
    """One sketch key's writes: per item, the amount sent and the amount acknowledged (an
    add counts 1; a t-digest value is its item, in decimal)."""

    sent: Counter[bytes] = field(default_factory=Counter)
    acked: Counter[bytes] = field(default_factory=Counter)
    removed_sent: Counter[bytes] = field(default_factory=Counter)
    """CF.DEL of items acknowledged as added (each at most once)."""
    removed_acked: Counter[bytes] = field(default_factory=Counter)


@dataclass
class Reading:
    """One sketch key as a node answers it: per-item answers (BF/CF: found 1 or 0, CMS: its
    estimate, TOPK: its count), the key's totals (CF.INFO's inserted and deleted, the
    t-digest's observations, minimum and maximum) and its DUMP bytes."""

    items: dict[bytes, int] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)
    dump: bytes = b""
    registers: dict[int, int] = field(default_factory=dict)
    """An HLL's registers that are not 0, by index (GET's bytes decoded)."""


def connect(node: LabNode) -> redis.Redis:
    """A redis-py client without its own retries (the workload decides what a retry is)."""
    host, port = node.resp
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass
class Ledger:
    """What one client sent and what was acknowledged."""

    client: int
    vmax_sent: dict[int, int] = field(default_factory=dict)  # index -> largest value sent
    vmax_acked: dict[int, int] = field(default_factory=dict)  # index -> largest acked
    incr_sent: int = 0
    incr_acked: int = 0
    sketches: dict[str, Tally] = field(default_factory=lambda: {name: Tally() for name in SKETCHES})
    created: set[str] = field(default_factory=set)
    """The sketch families whose key a reply said exists."""
    anomalies: list[str] = field(default_factory=list)
    """Replies no correct node gives (a CF.DEL that did not find an item it acknowledged)."""
    replies: Counter[str] = field(default_factory=Counter)

    @property
    def vmax_key(self) -> bytes:
        return b"v:%d" % self.client

    @property
    def counter_key(self) -> bytes:
        return b"c:%d" % self.client

    def sketch_key(self, family: str) -> bytes:
        return SKETCHES[family].prefix + b":%d" % self.client

    def forget_acked(self) -> None:
        """Count every write acknowledged so far as only sent (a window in which a node may
        lose what it acknowledged, by its documented contract)."""
        self.vmax_acked.clear()
        self.incr_acked = 0
        for tally in self.sketches.values():
            tally.acked.clear()
            tally.removed_acked.clear()
        self.anomalies.clear()


class Writer(threading.Thread):
    """One client: writes to one node from the lab's client namespace until told to stop."""

    def __init__(
        self, lab: Lab, node: LabNode, ledger: Ledger, *, seed: int, ops_max: int, pause_s: float
    ) -> None:
        super().__init__(daemon=True, name=f"chaos-writer-{ledger.client}")
        self.lab, self.node, self.ledger = lab, node, ledger
        self.rng = random.Random(seed)
        self.ops_max, self.pause_s = ops_max, pause_s
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            enter_netns(self.lab.client_ns)
            client = connect(self.node)
            for op in range(1, self.ops_max + 1):
                if self.stopping.is_set():
                    break
                draw = self.rng.random()
                if draw < VMAX_SHARE:
                    client = self._vmax(client, self.rng.randrange(VMAX_INDICES), op)
                elif draw < VMAX_SHARE + INCRBY_SHARE:
                    client = self._incrby(client, self.rng.randint(1, 9))
                else:
                    client = self._sketch(client, self._family(draw), op)
                self.stopping.wait(self.pause_s)
        except BaseException as error:  # surfaced by the test, never swallowed
            self.error = error

    @staticmethod
    def _family(draw: float) -> str:
        """The sketch family a draw past VMAX's and INCRBY's shares falls on."""
        at = VMAX_SHARE + INCRBY_SHARE
        for name, sketch in SKETCHES.items():
            at += sketch.share
            if draw < at:
                return name
        return name  # (the shares sum to 1 but for rounding)

    def _vmax(self, client: redis.Redis, index: int, value: int) -> redis.Redis:
        ledger = self.ledger
        ledger.vmax_sent[index] = max(ledger.vmax_sent.get(index, 0), value)
        client, acked, _ = self._send(client, "VMAX", ledger.vmax_key, index, value, tries=RETRIES)
        if acked:
            ledger.vmax_acked[index] = max(ledger.vmax_acked.get(index, 0), value)
        return client

    def _incrby(self, client: redis.Redis, amount: int) -> redis.Redis:
        ledger = self.ledger
        ledger.incr_sent += amount
        client, acked, _ = self._send(client, "INCRBY", ledger.counter_key, amount)
        if acked:
            ledger.incr_acked += amount
        return client

    def _sketch(self, client: redis.Redis, family: str, op: int) -> redis.Redis:
        """One write of ``family`` to this client's key (created first if it must be)."""
        ledger, rng = self.ledger, self.rng
        key = ledger.sketch_key(family)
        if SKETCHES[family].create and family not in ledger.created:
            client = self._create(client, family)
            if family not in ledger.created:
                return client
        amount = 1
        kind = SKETCHES[family].kind
        if kind in ("cms", "topk"):
            item = b"i%d" % rng.randrange(SKETCH_ITEMS)
        elif kind == "tdigest":
            item = b"%d" % op
        else:
            item = b"i%d" % op
        tally = ledger.sketches[family]
        if kind == "cuckoo" and rng.random() < CF_DEL_SHARE:
            return self._cf_del(client, key, tally)
        command: tuple[object, ...] = (ADD_COMMANDS[kind], key, item)
        if kind == "cms":
            amount = rng.randint(1, 9)
            command = (*command, amount)
        tally.sent[item] += amount
        client, acked, _ = self._send(client, *command)
        if acked:
            tally.acked[item] += amount
        return client

    def _cf_del(self, client: redis.Redis, key: bytes, tally: Tally) -> redis.Redis:
        """CF.DEL of an item acknowledged as added and not deleted before (its node holds it,
        so the reply must be 1), if there is one."""
        held = sorted(item for item in tally.acked if not tally.removed_sent[item])
        if not held:
            return client
        item = self.rng.choice(held)
        tally.removed_sent[item] += 1
        client, acked, reply = self._send(client, "CF.DEL", key, item)
        if acked:
            tally.removed_acked[item] += 1
            if reply != 1:
                self.ledger.anomalies.append(
                    f"{key!r}: CF.DEL of the acknowledged {item!r}: {reply!r}"
                )
        return client

    def _create(self, client: redis.Redis, family: str) -> redis.Redis:
        """Send the key's create until a reply says it exists (bounded); on another error the
        write is skipped and a later one tries again."""
        ledger = self.ledger
        name, *params = SKETCHES[family].create
        key = ledger.sketch_key(family)
        client, done, _ = self._send(client, name, key, *params, tries=RETRIES, exists_is_done=True)
        if done:
            ledger.created.add(family)
        return client

    def _send(
        self, client: redis.Redis, *command: object, tries: int = 1, exists_is_done: bool = False
    ) -> tuple[redis.Redis, bool, object]:
        """Send a write, again on a new connection after a lost one (up to ``tries`` in all:
        only an idempotent write is sent more than once): the client to go on with, whether
        the write was acknowledged (with ``exists_is_done``, a create whose key already
        exists counts as done, not as an error) and its reply."""
        ledger = self.ledger
        for attempt in range(1, tries + 1):
            try:
                reply = client.execute_command(*command)
            except redis.ResponseError as error:
                if exists_is_done and "already exists" in str(error):
                    return client, True, None
                ledger.replies[f"error {str(error).split()[0]}"] += 1
                return client, False, None
            except (redis.ConnectionError, redis.TimeoutError) as error:
                ledger.replies[type(error).__name__] += 1
                client.close()
                client = connect(self.node)
                if attempt < tries:
                    self.stopping.wait(0.2)
                continue
            ledger.replies["ok"] += 1
            return client, True, reply
        return client, False, None


class Workload:
    """Several writers spread over the nodes; start, stop, and the ledgers they kept."""

    def __init__(
        self,
        lab: Lab,
        seed: int,
        *,
        clients: int = 3,
        ops_max: int = 400,
        pause_s: float = 0.02,
        nodes: list[int] | None = None,
        first_client: int = 0,
    ) -> None:
        """``first_client`` numbers this workload's clients (and so its keys) after another's,
        so that several workloads (before, during, after a fault) are checked together."""
        targets = nodes if nodes is not None else [node.index for node in lab.nodes]
        self.ledgers = [Ledger(first_client + i) for i in range(clients)]
        self.writers = [
            Writer(
                lab,
                lab.nodes[targets[i % len(targets)]],
                ledger,
                seed=seed * 1000 + ledger.client,
                ops_max=ops_max,
                pause_s=pause_s,
            )
            for i, ledger in enumerate(self.ledgers)
        ]

    def start(self) -> None:
        for writer in self.writers:
            writer.start()

    def stop(self) -> None:
        for writer in self.writers:
            writer.stopping.set()
        for writer in self.writers:
            writer.join(60)
            assert not writer.is_alive(), f"{writer.name} did not stop"
            if writer.error is not None:
                raise writer.error

    def stop_after_all(self, timeout_s: float = 120.0) -> None:
        """Let every writer finish its ``ops_max`` writes, then stop (bounded)."""
        deadline = time.monotonic() + timeout_s
        for writer in self.writers:
            writer.join(max(0.0, deadline - time.monotonic()))
        self.stop()

    def acked(self) -> int:
        return sum(ledger.replies["ok"] for ledger in self.ledgers)

    def summary(self) -> str:
        total: Counter[str] = Counter()
        for ledger in self.ledgers:
            total.update(ledger.replies)
        return ", ".join(f"{name}: {count}" for name, count in sorted(total.items()))


# ----- the checker -------------------------------------------------------------------------


class ViolationError(AssertionError):
    """The final state lost an acknowledged write or holds something nobody wrote."""


State = dict[bytes, "dict[int, int] | int | Reading"]
"""A node's keys: a vector as {index: value}, a counter as its value, a sketch as its
:class:`Reading`, and -1 for a key nobody wrote."""


def sketch_keys(ledgers: list[Ledger]) -> dict[bytes, tuple[str, Tally]]:
    """Every sketch key the ledgers write: its kind and its tally."""
    return {
        ledger.sketch_key(family): (SKETCHES[family].kind, tally)
        for ledger in ledgers
        for family, tally in ledger.sketches.items()
    }


def _info(reply: object) -> dict[bytes, object]:
    """An INFO reply as a dict (redis-py parses some families' INFO into one already)."""
    if isinstance(reply, dict):
        return reply
    assert isinstance(reply, list), reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def read_sketch(client: redis.Redis, key: bytes, kind: str, tally: Tally) -> Reading:
    """What the checks read of one sketch key (the items asked about come from the ledger,
    so every node is asked the same)."""
    totals: dict[str, float] = {}
    asked: list[bytes] = []
    if kind in ("bloom", "cuckoo"):
        asked = sorted(tally.acked)
    elif kind in ("cms", "topk"):
        asked = sorted(tally.sent)
    answers: list[int] = []
    if kind == "bloom" and asked:
        answers = client.execute_command("BF.MEXISTS", key, *asked)
    elif kind == "cuckoo":
        fields = _info(client.execute_command("CF.INFO", key))
        totals = {
            "inserted": int(fields[b"Number of items inserted"]),
            "deleted": int(fields[b"Number of items deleted"]),
        }
        if asked:
            answers = client.execute_command("CF.MEXISTS", key, *asked)
    elif kind == "tdigest":
        observations = int(_info(client.execute_command("TDIGEST.INFO", key))[b"Observations"])
        totals = {"observations": observations}
        if observations:
            totals["min"] = float(client.execute_command("TDIGEST.MIN", key))
            totals["max"] = float(client.execute_command("TDIGEST.MAX", key))
    elif kind == "cms":
        totals = {"count": int(_info(client.execute_command("CMS.INFO", key))[b"count"])}
        if asked:
            answers = client.execute_command("CMS.QUERY", key, *asked)
    elif kind == "topk" and asked:
        answers = client.execute_command("TOPK.COUNT", key, *asked)
    registers: dict[int, int] = {}
    if kind == "hll":
        held = import_redis(client.get(key))
        registers = {int(i): int(held[i]) for i in held.nonzero()[0]}
    items = {item: int(answer) for item, answer in zip(asked, answers, strict=True)}
    return Reading(items, totals, client.execute_command("DUMP", key), registers)


def read_state(node: LabNode, ledgers: list[Ledger]) -> State:
    """Every key of ``node``."""
    client = connect(node)
    sketches = sketch_keys(ledgers)
    try:
        state: State = {}
        for key in client.scan_iter(count=1000):
            if key.startswith(b"v:"):
                flat = client.execute_command("VGET", key)
                state[key] = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
            elif key.startswith(b"c:"):
                state[key] = int(client.get(key) or 0)
            elif key in sketches:
                state[key] = read_sketch(client, key, *sketches[key])
            else:
                state[key] = -1  # a key nobody wrote: reported by violations()
        return state
    finally:
        client.close()


def sketch_violations(key: bytes, kind: str, tally: Tally, reading: Reading) -> list[str]:
    """What ``reading`` breaks of "every acknowledged write, and nothing else" (see the
    module's docstring for each kind's bounds)."""
    out: list[str] = []
    items, totals = reading.items, reading.totals
    acked, sent = tally.acked, tally.sent
    if kind in ("bloom", "cuckoo"):
        out += [
            f"{key!r}: lost the acknowledged add of {item!r}"
            for item in sorted(acked)
            if items.get(item, 0) != 1 and not tally.removed_sent[item]
        ]
    if kind == "cms":
        count = totals.get("count", 0)
        if not acked.total() <= count <= sent.total():
            out.append(
                f"{key!r}: count {count:g}, outside {acked.total()} acknowledged .. "
                f"{sent.total()} sent"
            )
    if kind == "cuckoo":
        # live copies: the adds less the deletes that applied
        removed_acked, removed_sent = tally.removed_acked.total(), tally.removed_sent.total()
        low, high = acked.total() - removed_sent, sent.total() - removed_acked
        inserted, deleted = totals.get("inserted", 0), totals.get("deleted", 0)
        if not low <= inserted <= high:
            out.append(f"{key!r}: {inserted:g} inserted, outside {low} .. {high}")
        if not removed_acked <= deleted <= removed_sent:
            out.append(
                f"{key!r}: {deleted:g} deleted, outside {removed_acked} acknowledged .. "
                f"{removed_sent} sent"
            )
    elif kind == "tdigest":
        observations = totals.get("observations", 0)
        if not sum(acked.values()) <= observations <= sum(sent.values()):
            out.append(
                f"{key!r}: {observations:g} observations, outside {sum(acked.values())} "
                f"acknowledged .. {sum(sent.values())} sent"
            )
        acked_values = [int(item) for item in acked]
        sent_values = [int(item) for item in sent]
        low, high = totals.get("min"), totals.get("max")
        if acked_values and (low is None or low > min(acked_values)):
            out.append(f"{key!r}: minimum {low}, above the acknowledged {min(acked_values)}")
        if acked_values and (high is None or high < max(acked_values)):
            out.append(f"{key!r}: maximum {high}, below the acknowledged {max(acked_values)}")
        if low is not None and (not sent_values or low < min(sent_values)):
            out.append(f"{key!r}: minimum {low}, never written")
        if high is not None and (not sent_values or high > max(sent_values)):
            out.append(f"{key!r}: maximum {high}, never written")
    elif kind == "hll":
        out += _register_violations(key, tally, reading.registers)
    elif kind in ("cms", "topk"):
        for item in sorted(sent):
            found = items.get(item, 0)
            if found < acked[item]:
                out.append(f"{key!r}[{item!r}] = {found}: below the {acked[item]} acknowledged")
            elif found > sent[item]:
                out.append(f"{key!r}[{item!r}] = {found}: above the {sent[item]} sent")
    return out


def _highest_ranks(members: Counter[bytes]) -> dict[int, int]:
    """Each register's highest rank among ``members`` (Redis's hash, as PFADD takes it)."""
    indices, ranks = members_index_rank(sorted(members))
    highest: dict[int, int] = {}
    for index, rank in zip(indices.tolist(), ranks.tolist(), strict=True):
        highest[index] = max(highest.get(index, 0), rank)
    return highest


def _register_violations(key: bytes, tally: Tally, registers: dict[int, int]) -> list[str]:
    """An HLL's registers between the highest ranks of the members acknowledged and sent."""
    out: list[str] = []
    low, high = _highest_ranks(tally.acked), _highest_ranks(tally.sent)
    for index in sorted(set(low) | set(registers)):
        held = registers.get(index, 0)
        if held < low.get(index, 0):
            out.append(f"{key!r} register {index} = {held}: lost an acknowledged PFADD")
        elif held > high.get(index, 0):
            out.append(f"{key!r} register {index} = {held}: no member sent sets it")
    return out


def violations(ledgers: list[Ledger], state: State) -> list[str]:
    """Everything in ``state`` that breaks "every acknowledged write, and nothing else"."""
    out: list[str] = []
    sketches = sketch_keys(ledgers)
    known = {ledger.vmax_key for ledger in ledgers}
    known.update(ledger.counter_key for ledger in ledgers)
    known.update(sketches)
    for key in state:
        if key not in known:
            out.append(f"{key!r}: a key nobody wrote")
    for ledger in ledgers:
        vector = state.get(ledger.vmax_key, {})
        assert isinstance(vector, dict)
        for index, acked in sorted(ledger.vmax_acked.items()):
            if vector.get(index, 0) < acked:
                out.append(
                    f"{ledger.vmax_key!r}[{index}] = {vector.get(index, 0)}: lost the "
                    f"acknowledged VMAX to {acked}"
                )
        for index, value in sorted(vector.items()):
            if value > ledger.vmax_sent.get(index, 0):
                out.append(f"{ledger.vmax_key!r}[{index}] = {value}: never written")
        counter = state.get(ledger.counter_key, 0)
        assert isinstance(counter, int)
        if counter < ledger.incr_acked:
            out.append(
                f"{ledger.counter_key!r} = {counter}: below the {ledger.incr_acked} acknowledged"
            )
        if counter > ledger.incr_sent:
            out.append(f"{ledger.counter_key!r} = {counter}: above the {ledger.incr_sent} sent")
    for key, (family, tally) in sketches.items():
        reading = state.get(key, Reading())
        assert isinstance(reading, Reading)
        out += sketch_violations(key, family, tally, reading)
    for ledger in ledgers:
        out += ledger.anomalies
    return out


def settle_and_check(
    lab: Lab, ledgers: list[Ledger], nodes: list[int] | None = None, timeout_s: float = 60.0
) -> None:
    """Poll (bounded) until every node holds the same state and it keeps every acknowledged
    write and nothing else; fail with what is wrong on each node otherwise."""
    indices = nodes if nodes is not None else [node.index for node in lab.nodes]
    deadline = time.monotonic() + timeout_s
    while True:
        states = {
            i: in_netns(lab.client_ns, lambda i=i: read_state(lab.nodes[i], ledgers))
            for i in indices
        }
        problems = {i: violations(ledgers, state) for i, state in states.items()}
        agree = all(state == states[indices[0]] for state in states.values())
        if agree and not any(problems.values()):
            return
        if time.monotonic() > deadline:
            report = [f"after {timeout_s} s the nodes {'agree' if agree else 'disagree'}"]
            for i, found in problems.items():
                report.append(f"node {i}: {len(found)} violations")
                report.extend(f"  {line}" for line in found[:10])
            raise ViolationError("\n".join(report))
        time.sleep(0.5)
