"""Cluster membership: scuttlebutt reconciliation of per-node state, phi accrual liveness.

Why this module exists: every node must learn who else is in the cluster, where they listen,
whether they are alive, and the small key/value tags they publish (grapevine's local state),
without a coordinator and over lossy UDP. This is the sans-IO core of that: the driver passes
``now_ms`` and owns the sockets; this module turns calls into plain msgpack-friendly messages
(dicts, lists, ints, str, bytes, bools, None) and :mod:`events <hearsay.protocol.membership>`.

State. Each node owns a small versioned map: its address, its status (alive / leaving / left),
a heartbeat counter, and user tags ``key -> (value, version, expiry_unix_ms | None)``. Every
change bumps the owner's version counter; a node's state is identified by ``(generation,
max_version)``, where the generation (chosen by the caller) grows on every restart.

Reconciliation (scuttlebutt, "Efficient reconciliation and flow control for anti-entropy
protocols", as in grapevine and chitchat) is a three-way exchange:

- ``SYN``  A -> B: A's digest ``[node, generation, max_version]`` (a random subset when the full
  digest does not fit one datagram; ``complete`` says which);
- ``ACK``  B -> A: deltas for the nodes where B is ahead, plus B's own digest entries for the
  nodes where B is behind (a request);
- ``ACK2`` A -> B: deltas answering B's request.

A delta for one node is ``[node, generation, from_version, to_version, entries]``: every entry
of that node with a version in ``(from_version, to_version]``, in version order. Deltas are
sent in scuttle-depth order (the node with the most outstanding versions first) and truncated to
the byte budget only at a version boundary, never leaving a gap, so the receiver's
``max_version`` stays a correct watermark: a receiver applies a delta only if its own watermark
is at least ``from_version`` and then moves it to ``to_version``. A higher generation replaces a
node's stale past at once (the delta then starts at version 0); a lower one is ignored.

Liveness. A heartbeat is a new version of the owner's heartbeat counter; its arrival (whoever
relayed it) feeds a phi accrual detector per peer. Peers go alive -> suspect -> failed as phi
crosses ``phi_suspect`` / ``phi_threshold`` (or silence passes the preset's hard timeouts),
back to alive on a fresh heartbeat, to left on a graceful leave, and are reaped (forgotten)
``dead_node_reap_ms`` after being seen failed or left. A reaped ``(node, generation)`` is
remembered for ``reaped_memory_ms`` so stale gossip cannot resurrect it; a higher generation,
or a message sent by the node itself, brings it back. Convictions are suppressed right after a
local pause (see :class:`~hearsay.protocol.failure_detector.PauseGuard`).

Tag expiry is absolute (unix milliseconds) and converges without coordination: every node hides
a tag once its expiry passes. The expired entry is kept as a hidden tombstone for
``tag_tombstone_ms`` so that it still overrides older values of the key at nodes that lag
behind; after that it is dropped. (A node that lags by more than ``tag_tombstone_ms`` may keep a
superseded value of that key until the owner's next generation.)

Strangers (without a keyring anyone can forge a membership message, so these bound the harm):

- a generation more than ``GENERATION_AHEAD_MAX_MS`` ahead of the receiver's clock (in unix
  ms) is refused: honest generations are restart counters (or, after a refutation, a claim
  that passed this check plus one), far below it; without this one forged claim of
  generation 2**63-1 made a live node look ``left`` for good;
- a claim about ourselves with a higher generation than ours is refuted: we move to the
  claimed generation plus one, which outranks it everywhere (as SWIM's incarnation numbers).
  After a restart the stored counter may be below what peers remember; their digests then
  carry the higher generation back, and the same refutation moves past it;
- at most ``NEW_MEMBERS_BURST`` unknown nodes are taken in at once, then
  ``NEW_MEMBERS_PER_S`` per second (a digest that mentions thousands of invented nodes cannot
  fill the table or the list of peers gossip is sent to); a refused node is simply asked for
  again by a later sync, so an honest big cluster still converges, a little later.

Everything is deterministic given the ``random.Random`` passed in and the call sequence: peers
are always iterated in sorted order before any random choice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol, TypeAlias, TypeVar

import msgpack

from hearsay.base.errors import DecodeError
from hearsay.protocol.failure_detector import PauseGuard, PhiAccrualDetector
from hearsay.protocol.presets import DEFAULT_PRESET, GossipPreset

__all__ = [
    "TAG_ENTRY_BYTES_MAX",
    "Address",
    "MemberAlive",
    "MemberFailed",
    "MemberInfo",
    "MemberJoined",
    "MemberLeaving",
    "MemberLeft",
    "MemberReaped",
    "MemberState",
    "MemberSuspect",
    "Membership",
    "MembershipDecodeError",
    "MembershipEvent",
    "NodeStatus",
    "RandomSource",
    "TagExpired",
    "TagUpdated",
    "TagValue",
]

_T = TypeVar("_T")


class RandomSource(Protocol):
    """What membership needs from its random generator: pass a seeded ``random.Random``.

    A structural type rather than ``random.Random`` itself, so the gossip core never imports
    the ``random`` module (not even for type checking: the layer contract forbids it).
    """

    def random(self) -> float: ...

    def shuffle(self, x: MutableSequence[Any]) -> None: ...


def _choice(rng: RandomSource, items: Sequence[_T]) -> _T:
    return items[min(len(items) - 1, int(rng.random() * len(items)))]


def _sample(rng: RandomSource, items: Sequence[_T], k: int) -> list[_T]:
    pool = list(items)
    rng.shuffle(pool)
    return pool[:k]


Address: TypeAlias = tuple[str, int]
TagValue: TypeAlias = str | bytes | int | float | bool | None

# ---------------------------------------------------------------------------------------------
# Limits (checked on every incoming message before anything is applied)

NODE_ID_CHARS_MAX: Final = 256
TAG_KEY_CHARS_MAX: Final = 256
HOST_CHARS_MAX: Final = 255
TAG_ENTRY_BYTES_MAX: Final = 512
"""Largest packed tag entry: small enough that any entry fits one datagram with room to spare,
so a truncated delta always makes progress and a watermark can never get stuck behind it."""
DIGEST_ENTRIES_MAX: Final = 4096
DELTAS_MAX: Final = 4096
DELTA_ENTRIES_MAX: Final = 4096
MEMBERS_MAX: Final = 10_000
"""Nodes one membership tracks: beyond it, unknown nodes are ignored (a peer cannot make us
grow without bound by inventing members)."""
GENERATION_AHEAD_MAX_MS: Final = 3_600_000
"""A generation claim more than an hour ahead of our clock is refused (see the docstring)."""
NEW_MEMBERS_BURST: Final = 512
NEW_MEMBERS_PER_S: Final = 64
"""Unknown nodes taken in at once, then per second (see the module docstring)."""
TAGS_PER_MEMBER_MAX: Final = 1_024
"""State entries kept per node: beyond it, new keys of that node are ignored."""
BUDGET_BYTES_MIN: Final = 2 * TAG_ENTRY_BYTES_MAX
_INT_MAX: Final = 2**63 - 1
_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
_PORT_MAX: Final = 65535

# Reserved keys of the owner-maintained fields; user tag keys may not start with NUL.
_SYS: Final = "\x00"
_K_ADDR: Final = "\x00addr"
_K_STATUS: Final = "\x00status"
_K_HB: Final = "\x00hb"

MSG_SYN: Final = "syn"
MSG_ACK: Final = "ack"
MSG_ACK2: Final = "ack2"
MESSAGE_TYPES: Final = (MSG_SYN, MSG_ACK, MSG_ACK2)
# Growth of an array header from fixarray (1 byte) to array16 (3 bytes); every list we build
# holds fewer than 65536 items.
_LIST_GROWTH: Final = 2


class MembershipDecodeError(DecodeError):
    """A membership message from a peer is malformed (wrong type, size or field)."""


class NodeStatus(StrEnum):
    """What a node says about itself."""

    ALIVE = "alive"
    LEAVING = "leaving"
    LEFT = "left"


class MemberState(StrEnum):
    """What this node believes about a member."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEAVING = "leaving"
    LEFT = "left"


_STATUS_VALUES: Final = frozenset(s.value for s in NodeStatus)
_LIVE_STATES: Final = frozenset({MemberState.ALIVE, MemberState.SUSPECT, MemberState.LEAVING})


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A node became known (``restarted``: it replaced an older generation we knew)."""

    node_id: str
    generation: int
    address: Address
    restarted: bool


@dataclass(frozen=True, slots=True)
class MemberAlive:
    """A suspect or failed node sent a fresh heartbeat."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class MemberSuspect:
    node_id: str
    generation: int
    phi: float


@dataclass(frozen=True, slots=True)
class MemberFailed:
    node_id: str
    generation: int
    phi: float


@dataclass(frozen=True, slots=True)
class MemberLeaving:
    """The node announced it is leaving (still running, draining)."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """The node announced a graceful leave."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class MemberReaped:
    """A failed or left node was forgotten."""

    node_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class TagUpdated:
    node_id: str
    key: str
    value: TagValue
    version: int
    expiry_unix_ms: int | None


@dataclass(frozen=True, slots=True)
class TagExpired:
    node_id: str
    key: str
    version: int


MembershipEvent: TypeAlias = (
    MemberJoined
    | MemberAlive
    | MemberSuspect
    | MemberFailed
    | MemberLeaving
    | MemberLeft
    | MemberReaped
    | TagUpdated
    | TagExpired
)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One row of :meth:`Membership.members`."""

    node_id: str
    address: Address
    state: MemberState
    status: NodeStatus
    phi: float
    generation: int
    heartbeat: int
    is_self: bool


# ---------------------------------------------------------------------------------------------
# State


@dataclass(slots=True)
class _Entry:
    value: Any
    version: int
    expiry_unix_ms: int | None
    hidden: bool = False
    """Expired (or received already expired): a tombstone until garbage-collected."""


class _NodeState:
    """The versioned state one node owns, as known locally."""

    __slots__ = ("entries", "generation", "max_version", "node_id")

    def __init__(self, node_id: str, generation: int) -> None:
        self.node_id = node_id
        self.generation = generation
        self.entries: dict[str, _Entry] = {}
        self.max_version = 0

    def entries_after(self, version: int) -> list[tuple[str, _Entry]]:
        items = [(k, e) for k, e in self.entries.items() if e.version > version]
        items.sort(key=lambda item: item[1].version)
        return items

    @property
    def address(self) -> Address | None:
        e = self.entries.get(_K_ADDR)
        return None if e is None else e.value

    @property
    def status(self) -> NodeStatus:
        e = self.entries.get(_K_STATUS)
        return NodeStatus.ALIVE if e is None else NodeStatus(e.value)

    @property
    def heartbeat(self) -> int:
        e = self.entries.get(_K_HB)
        return 0 if e is None else int(e.value)


@dataclass(slots=True)
class _Peer:
    state: _NodeState
    detector: PhiAccrualDetector
    member_state: MemberState
    since_ms: int
    created_ms: int
    announced: bool = False
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class _Reaped:
    generation: int
    until_ms: int


# Parsed (validated) wire values.
_WireEntry: TypeAlias = tuple[str, Any, int, int | None]


@dataclass(frozen=True, slots=True)
class _Delta:
    node_id: str
    generation: int
    from_version: int
    to_version: int
    entries: tuple[_WireEntry, ...]


@dataclass(frozen=True, slots=True)
class _Digest:
    node_id: str
    generation: int
    max_version: int


def _packed_len(obj: object) -> int:
    return len(msgpack.packb(obj))


# ---------------------------------------------------------------------------------------------
# Validation of incoming values


def _fail(what: str) -> MembershipDecodeError:
    return MembershipDecodeError(f"membership message: {what}")


def _check_uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _INT_MAX:
        raise _fail(f"{what} must be an int in [0, 2^63)")
    return value


def _check_node_id(value: object, what: str = "node id") -> str:
    if type(value) is not str or not 0 < len(value) <= NODE_ID_CHARS_MAX:
        raise _fail(f"{what} must be a non-empty str of at most {NODE_ID_CHARS_MAX} chars")
    return value


def _check_list(value: object, what: str, max_len: int) -> list[Any]:
    if type(value) is not list or len(value) > max_len:
        raise _fail(f"{what} must be a list of at most {max_len} items")
    return value


def _check_address(value: object) -> Address:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _fail("address must be [host, port]")
    host: object = value[0]
    port: object = value[1]
    if type(host) is not str or not 0 < len(host) <= HOST_CHARS_MAX:
        raise _fail("address host must be a non-empty str")
    if type(port) is not int or not 0 <= port <= _PORT_MAX:
        raise _fail("address port must be an int in [0, 65535]")
    return (host, port)


def _check_tag_value(value: object) -> TagValue:
    t = type(value)
    if value is None or t is bool or t is float:
        return value  # type: ignore[return-value]
    if t is int:
        if not _INT_MIN <= value <= _UINT_MAX:  # type: ignore[operator]
            raise _fail("tag int out of range")
        return value  # type: ignore[return-value]
    if t is str or t is bytes:
        if len(value) > TAG_ENTRY_BYTES_MAX:  # type: ignore[arg-type]
            raise _fail("tag value too long")
        return value  # type: ignore[return-value]
    raise _fail("tag value must be None, bool, int, float, str or bytes")


def _check_entry(raw: object) -> _WireEntry:
    if type(raw) is not list or len(raw) != 4:
        raise _fail("entry must be [key, value, version, expiry]")
    key, value, version, expiry = raw
    if type(key) is not str or not 0 < len(key) <= TAG_KEY_CHARS_MAX:
        raise _fail("entry key must be a non-empty str")
    version = _check_uint(version, "entry version")
    if version == 0:
        raise _fail("entry version must be >= 1")
    if expiry is not None:
        expiry = _check_uint(expiry, "entry expiry")
    if key == _K_ADDR:
        value = _check_address(value)
    elif key == _K_STATUS:
        if type(value) is not str or value not in _STATUS_VALUES:
            raise _fail("status must be alive, leaving or left")
    elif key == _K_HB:
        value = _check_uint(value, "heartbeat")
    else:
        value = _check_tag_value(value)
    if _packed_len([key, value, version, expiry]) > TAG_ENTRY_BYTES_MAX:
        raise _fail("entry too large")
    return (key, value, version, expiry)


def _check_delta(raw: object) -> _Delta:
    if type(raw) is not list or len(raw) != 5:
        raise _fail("delta must be [node, generation, from_version, to_version, entries]")
    node_id = _check_node_id(raw[0])
    generation = _check_uint(raw[1], "generation")
    from_v = _check_uint(raw[2], "from_version")
    to_v = _check_uint(raw[3], "to_version")
    if to_v < from_v:
        raise _fail("to_version < from_version")
    raw_entries = _check_list(raw[4], "delta entries", DELTA_ENTRIES_MAX)
    entries = tuple(_check_entry(e) for e in raw_entries)
    last = from_v
    keys: set[str] = set()
    for key, _value, version, _expiry in entries:
        if version <= last or version > to_v:
            raise _fail("delta entries must have increasing versions in (from, to]")
        if key in keys:
            raise _fail("duplicate key in delta")
        keys.add(key)
        last = version
    return _Delta(node_id, generation, from_v, to_v, entries)


def _check_deltas(raw: object) -> list[_Delta]:
    deltas = [_check_delta(d) for d in _check_list(raw, "deltas", DELTAS_MAX)]
    if sum(len(d.entries) for d in deltas) > DELTA_ENTRIES_MAX:
        raise _fail("too many entries")
    return deltas


def _check_digest(raw: object) -> list[_Digest]:
    out: list[_Digest] = []
    seen: set[str] = set()
    for item in _check_list(raw, "digest", DIGEST_ENTRIES_MAX):
        if type(item) is not list or len(item) != 3:
            raise _fail("digest entry must be [node, generation, max_version]")
        node_id = _check_node_id(item[0])
        if node_id in seen:
            raise _fail("duplicate node in digest")
        seen.add(node_id)
        out.append(_Digest(node_id, _check_uint(item[1], "generation"), _check_uint(item[2], "v")))
    return out


def _check_message(msg: object, expected: str) -> dict[str, Any]:
    if type(msg) is not dict:
        raise _fail("message must be a map")
    if msg.get("t") != expected:
        raise _fail(f"expected a {expected!r} message")
    _check_node_id(msg.get("from"), "sender id")
    return msg


# ---------------------------------------------------------------------------------------------
# The membership table


class Membership:
    """The membership table of one node, driven by ``now_ms`` and an injected rng.

    Driving it: call :meth:`tick` often (every ``heartbeat_interval_ms / 2`` or faster); every
    ``membership_sync_interval_ms`` send :meth:`make_syn` to each address of
    :meth:`sync_targets`; pass every incoming membership message to :meth:`handle` (or
    ``on_syn`` / ``on_ack`` / ``on_ack2``) and send back what it returns to the sender; drain
    :meth:`next_event`. ``now_ms`` is the driver's clock in unix milliseconds (tag expiries are
    absolute unix times); it is treated as non-decreasing (an earlier value counts as the latest
    one seen).
    """

    def __init__(
        self,
        self_id: str,
        generation: int,
        address: Address,
        preset: GossipPreset = DEFAULT_PRESET,
        rng: RandomSource | None = None,
        *,
        now_ms: int | None = None,
        budget_bytes: int | None = None,
    ) -> None:
        if rng is None:
            raise ValueError("an explicit random.Random is required (sans-IO, deterministic)")
        _check_node_id(self_id)
        if type(generation) is not int or not 0 <= generation <= _INT_MAX:
            raise ValueError("generation must be an int in [0, 2^63)")
        address = _check_address(address)
        self._id = self_id
        self._preset = preset
        self._rng = rng
        self._budget = preset.udp_payload_bytes_max if budget_bytes is None else budget_bytes
        if self._budget < BUDGET_BYTES_MIN:
            raise ValueError(f"budget_bytes must be >= {BUDGET_BYTES_MIN}")
        self._now_ms = 0 if now_ms is None else now_ms
        self._self = _NodeState(self_id, generation)
        self._peers: dict[str, _Peer] = {}
        self._reaped: dict[str, _Reaped] = {}
        self._seeds: list[Address] = []
        self.refused_members = 0
        """Unknown nodes ignored because ``MEMBERS_MAX`` nodes are tracked already."""
        self.refused_tags = 0
        """A node's new state keys ignored because it holds ``TAGS_PER_MEMBER_MAX`` already."""
        self.refused_generations = 0
        """Claims refused because their generation is implausibly far ahead of our clock."""
        self.refutations = 0
        """Times a claim about ourselves made us move to a higher generation."""
        self._new_member_tokens = float(NEW_MEMBERS_BURST)
        self._new_member_refill_ms = self._now_ms
        self._events: deque[MembershipEvent] = deque()
        self._guard = PauseGuard(preset.local_pause_ms, preset.local_pause_grace_ms)
        if now_ms is not None:
            self._guard.tick(now_ms)
        self._next_heartbeat_ms = self._now_ms
        self._next_expiry_scan_ms: int | None = None
        self._set_own(_K_ADDR, address, None)
        self._set_own(_K_STATUS, NodeStatus.ALIVE.value, None)
        self._set_own(_K_HB, 0, None)

    # ----- identity and configuration -------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._id

    @property
    def generation(self) -> int:
        return self._self.generation

    @property
    def address(self) -> Address:
        addr = self._self.address
        assert addr is not None
        return addr

    @property
    def preset(self) -> GossipPreset:
        return self._preset

    @property
    def budget_bytes(self) -> int:
        """Default size budget of the messages built here (envelope excluded)."""
        return self._budget

    @property
    def max_version(self) -> int:
        """The version of this node's latest own change."""
        return self._self.max_version

    @property
    def local_pauses_detected(self) -> int:
        return self._guard.pauses_detected

    def add_seed(self, address: Address) -> None:
        """An address to contact before (or besides) known members; duplicates are ignored."""
        address = _check_address(address)
        if address not in self._seeds:
            self._seeds.append(address)
            self._seeds.sort()

    # ----- own state ------------------------------------------------------------------------

    def _advance(self, now_ms: int) -> int:
        """Note the time of a call: the latest time seen, and a local-pause check.

        Every entry point that is given ``now_ms`` feeds the pause guard, so a stall is noticed
        by whichever call comes first after it (often a datagram, before the next tick), and an
        interval spanning the stall is never learned as a peer's rhythm.
        """
        self._now_ms = max(self._now_ms, now_ms)
        self._guard.tick(self._now_ms)
        return self._now_ms

    def _plausible(self, generation: int) -> bool:
        """Whether a claimed generation is not implausibly far ahead (else count it)."""
        if generation <= self._now_ms + GENERATION_AHEAD_MAX_MS:
            return True
        self.refused_generations += 1
        return False

    def _refute(self, claimed_generation: int) -> None:
        """Someone holds a newer generation of us than we run (a forgery, or our own past
        under a clock that stepped back): move past it so our real state wins everywhere."""
        if claimed_generation > self._self.generation and self._plausible(claimed_generation):
            self._self.generation = min(claimed_generation + 1, _INT_MAX)
            self.refutations += 1

    def _admit_new_member(self) -> bool:
        """Spend one of the tokens that limit how fast unknown nodes are taken in."""
        elapsed_ms = self._now_ms - self._new_member_refill_ms
        if elapsed_ms > 0:
            self._new_member_tokens = min(
                float(NEW_MEMBERS_BURST),
                self._new_member_tokens + elapsed_ms * NEW_MEMBERS_PER_S / 1000,
            )
            self._new_member_refill_ms = self._now_ms
        if self._new_member_tokens < 1:
            return False
        self._new_member_tokens -= 1
        return True

    def _set_own(self, key: str, value: Any, expiry_unix_ms: int | None) -> None:
        version = self._self.max_version + 1
        self._self.entries[key] = _Entry(value, version, expiry_unix_ms)
        self._self.max_version = version
        if expiry_unix_ms is not None:
            self._note_expiry(expiry_unix_ms)

    def set_tag(
        self, key: str, value: TagValue, expiry_unix_ms: int | None = None, *, now_ms: int
    ) -> int:
        """Publish ``key = value`` (optionally until ``expiry_unix_ms``); returns its version.

        An expiry at or before ``now_ms`` publishes an already-expired tag, which removes the key
        everywhere (a delete).
        """
        now = self._advance(now_ms)
        if type(key) is not str or not 0 < len(key) <= TAG_KEY_CHARS_MAX or key.startswith(_SYS):
            raise ValueError("tag key must be a non-empty str, not starting with NUL")
        try:
            value = _check_tag_value(value)
        except MembershipDecodeError as exc:
            raise ValueError(str(exc)) from None
        if expiry_unix_ms is not None and (
            type(expiry_unix_ms) is not int or not 0 <= expiry_unix_ms <= _INT_MAX
        ):
            raise ValueError("expiry_unix_ms must be None or an int in [0, 2^63)")
        if _packed_len([key, value, _INT_MAX, expiry_unix_ms]) > TAG_ENTRY_BYTES_MAX:
            raise ValueError(f"tag entry larger than {TAG_ENTRY_BYTES_MAX} bytes packed")
        if key not in self._self.entries and len(self._self.entries) >= TAGS_PER_MEMBER_MAX:
            raise ValueError(f"a node holds at most {TAGS_PER_MEMBER_MAX} state keys")
        self._set_own(key, value, expiry_unix_ms)
        entry = self._self.entries[key]
        if expiry_unix_ms is not None and expiry_unix_ms <= now:
            entry.hidden = True
        return entry.version

    def get_tag(self, key: str) -> TagValue:
        """This node's own tag (None if absent or expired)."""
        return self.peer_value(self._id, key)

    def _visible(self, entry: _Entry) -> bool:
        return not entry.hidden and (
            entry.expiry_unix_ms is None or entry.expiry_unix_ms > self._now_ms
        )

    def _state_of(self, node_id: str) -> _NodeState | None:
        if node_id == self._id:
            return self._self
        peer = self._peers.get(node_id)
        return None if peer is None or not peer.announced else peer.state

    def peer_value(self, node_id: str, key: str) -> TagValue:
        """A tag of any known node (self included); None if absent or expired."""
        state = self._state_of(node_id)
        if state is None or key.startswith(_SYS):
            return None
        entry = state.entries.get(key)
        if entry is None or not self._visible(entry):
            return None
        value: TagValue = entry.value
        return value

    def peer_keys(self, node_id: str) -> list[str]:
        """The visible tag keys of a node, sorted."""
        state = self._state_of(node_id)
        if state is None:
            return []
        return sorted(
            k for k, e in state.entries.items() if not k.startswith(_SYS) and self._visible(e)
        )

    def peer_tags(self, node_id: str) -> dict[str, TagValue]:
        """The visible tags of a node."""
        return {k: self.peer_value(node_id, k) for k in self.peer_keys(node_id)}

    def set_leaving(self, now_ms: int) -> None:
        """Announce that this node is draining (peers see it as ``leaving``)."""
        self._advance(now_ms)
        if self._self.status is NodeStatus.ALIVE:
            self._set_own(_K_STATUS, NodeStatus.LEAVING.value, None)

    def leave(self, now_ms: int) -> None:
        """Announce a graceful leave. Keep syncing a few rounds so the news spreads, then stop."""
        self._advance(now_ms)
        if self._self.status is not NodeStatus.LEFT:
            self._set_own(_K_STATUS, NodeStatus.LEFT.value, None)

    # ----- time ----------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Heartbeat, failure detection, tag expiry and reaping, as of ``now_ms``."""
        now = self._advance(now_ms)
        p = self._preset
        if now >= self._next_heartbeat_ms and self._self.status is not NodeStatus.LEFT:
            self._set_own(_K_HB, self._self.heartbeat + 1, None)
            self._next_heartbeat_ms = max(
                self._next_heartbeat_ms + p.heartbeat_interval_ms, now + 1
            )
        suppress = self._guard.suppressing(now)
        for node_id in sorted(self._peers):
            peer = self._peers[node_id]
            if not peer.announced:
                if now - peer.created_ms >= p.dead_node_reap_ms:
                    del self._peers[node_id]  # never learned its address: drop quietly
                continue
            state = peer.member_state
            if state in _LIVE_STATES and not suppress:
                self._judge(peer, now)
            state = peer.member_state
            if state in (MemberState.FAILED, MemberState.LEFT) and (
                now - peer.since_ms >= p.dead_node_reap_ms
            ):
                self._reap(peer, now)
        if self._next_expiry_scan_ms is not None and now >= self._next_expiry_scan_ms:
            self._scan_expiry(now)
        for node_id in [n for n, r in self._reaped.items() if r.until_ms <= now]:
            del self._reaped[node_id]

    def _judge(self, peer: _Peer, now: int) -> None:
        p = self._preset
        phi = peer.detector.phi(now)
        last = peer.detector.last_heartbeat_ms
        silence = 0 if last is None else now - last
        gen = peer.state.generation
        node_id = peer.state.node_id
        if phi >= p.phi_threshold or silence >= p.dead_timeout_ms:
            peer.member_state = MemberState.FAILED
            peer.since_ms = now
            self._events.append(MemberFailed(node_id, gen, phi))
        elif peer.member_state is not MemberState.SUSPECT and (
            phi >= p.phi_suspect or silence >= p.suspect_timeout_ms
        ):
            peer.member_state = MemberState.SUSPECT
            peer.since_ms = now
            self._events.append(MemberSuspect(node_id, gen, phi))

    def _reap(self, peer: _Peer, now: int) -> None:
        node_id = peer.state.node_id
        del self._peers[node_id]
        self._reaped[node_id] = _Reaped(peer.state.generation, now + self._preset.reaped_memory_ms)
        self._events.append(MemberReaped(node_id, peer.state.generation))

    def _note_expiry(self, expiry_unix_ms: int) -> None:
        nxt = self._next_expiry_scan_ms
        if nxt is None or expiry_unix_ms < nxt:
            self._next_expiry_scan_ms = expiry_unix_ms

    def _scan_expiry(self, now: int) -> None:
        """Hide tags whose expiry passed (TagExpired), drop old tombstones, plan the next scan."""
        nxt: int | None = None
        keep_ms = self._preset.tag_tombstone_ms
        states = [(self._self, False)] + [
            (self._peers[n].state, self._peers[n].announced) for n in sorted(self._peers)
        ]
        for state, announced in states:
            for key in sorted(state.entries):
                entry = state.entries[key]
                expiry = entry.expiry_unix_ms
                if expiry is None:
                    continue
                if not entry.hidden and expiry <= now:
                    entry.hidden = True
                    if announced and not key.startswith(_SYS):
                        self._events.append(TagExpired(state.node_id, key, entry.version))
                if entry.hidden:
                    if expiry + keep_ms <= now:
                        del state.entries[key]
                        continue
                    due = expiry + keep_ms
                else:
                    due = expiry
                nxt = due if nxt is None else min(nxt, due)
        self._next_expiry_scan_ms = nxt

    # ----- peers and targets ---------------------------------------------------------------

    def _info(self, peer: _Peer) -> MemberInfo:
        addr = peer.state.address
        assert addr is not None
        return MemberInfo(
            node_id=peer.state.node_id,
            address=addr,
            state=peer.member_state,
            status=peer.state.status,
            phi=peer.detector.phi(self._now_ms),
            generation=peer.state.generation,
            heartbeat=peer.state.heartbeat,
            is_self=False,
        )

    def members(self) -> list[MemberInfo]:
        """Every known member, self included, sorted by id."""
        own_status = self._self.status
        own_state = {
            NodeStatus.ALIVE: MemberState.ALIVE,
            NodeStatus.LEAVING: MemberState.LEAVING,
            NodeStatus.LEFT: MemberState.LEFT,
        }[own_status]
        rows = [
            MemberInfo(
                node_id=self._id,
                address=self.address,
                state=own_state,
                status=own_status,
                phi=0.0,
                generation=self._self.generation,
                heartbeat=self._self.heartbeat,
                is_self=True,
            )
        ]
        rows.extend(self._info(p) for p in self._peers.values() if p.announced)
        rows.sort(key=lambda r: r.node_id)
        return rows

    def member(self, node_id: str) -> MemberInfo | None:
        """One member (self included) or None if unknown."""
        for row in self.members():
            if row.node_id == node_id:
                return row
        return None

    def live_peers(self) -> list[MemberInfo]:
        """Peers (self excluded) that are alive, suspect or leaving, sorted by id."""
        return [
            self._info(self._peers[n])
            for n in sorted(self._peers)
            if self._peers[n].announced and self._peers[n].member_state in _LIVE_STATES
        ]

    def sync_targets(self) -> list[Address]:
        """Addresses to send a SYN to this round.

        ``membership_sync_fanout`` random live peers; plus one random failed peer with
        probability ``failed / (live + 1)`` (so healed partitions reconnect) and one random seed
        with probability ``1 / (live + 1)`` (always when no peer is live), as Cassandra does.
        """
        live = [
            addr
            for n in sorted(self._peers)
            if (p := self._peers[n]).announced
            and p.member_state in _LIVE_STATES
            and (addr := p.state.address) is not None
        ]
        failed = [
            addr
            for n in sorted(self._peers)
            if (p := self._peers[n]).announced
            and p.member_state is MemberState.FAILED
            and (addr := p.state.address) is not None
        ]
        targets = _sample(self._rng, live, self._preset.membership_sync_fanout)
        if failed and self._rng.random() < len(failed) / (len(live) + 1):
            targets.append(_choice(self._rng, failed))
        seeds = [s for s in self._seeds if s != self.address]
        if seeds and (not live or self._rng.random() < 1 / (len(live) + 1)):
            targets.append(_choice(self._rng, seeds))
        out: list[Address] = []
        for t in targets:
            if t not in out and t != self.address:
                out.append(t)
        return out

    # ----- events --------------------------------------------------------------------------

    def next_event(self) -> MembershipEvent | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    def events(self) -> list[MembershipEvent]:
        """Drain every pending event, oldest first."""
        out = list(self._events)
        self._events.clear()
        return out

    # ----- building messages ---------------------------------------------------------------

    def _budget_of(self, budget_bytes: int | None) -> int:
        budget = self._budget if budget_bytes is None else budget_bytes
        if budget < BUDGET_BYTES_MIN:
            raise ValueError(f"budget_bytes must be >= {BUDGET_BYTES_MIN}")
        return budget

    def _own_digest(self) -> list[list[Any]]:
        out: list[list[Any]] = [[self._id, self._self.generation, self._self.max_version]]
        for node_id in sorted(self._peers):
            s = self._peers[node_id].state
            out.append([node_id, s.generation, s.max_version])
        return out

    def _fit_digest(
        self, entries: list[list[Any]], budget: int, keep_first: bool
    ) -> tuple[list[list[Any]], bool, int]:
        """As many digest entries as fit ``budget`` (a random subset if not all); bytes used."""
        sizes = [_packed_len(e) for e in entries]
        if sum(sizes) <= budget:
            return entries, True, sum(sizes)
        order = list(range(len(entries)))
        fixed = [0] if keep_first and entries else []
        rest = order[len(fixed) :]
        self._rng.shuffle(rest)
        chosen: list[int] = []
        used = 0
        for i in fixed + rest:
            if used + sizes[i] <= budget:
                chosen.append(i)
                used += sizes[i]
        chosen.sort()
        return [entries[i] for i in chosen], False, used

    def make_syn(self, budget_bytes: int | None = None) -> dict[str, Any]:
        """A SYN carrying this node's digest (a random subset with self first if too large)."""
        budget = self._budget_of(budget_bytes)
        base = _packed_len({"t": MSG_SYN, "from": self._id, "complete": False, "digest": []})
        digest, complete, _used = self._fit_digest(
            self._own_digest(), budget - base - _LIST_GROWTH, keep_first=True
        )
        return {"t": MSG_SYN, "from": self._id, "complete": complete, "digest": digest}

    def _pack_deltas(
        self, offers: list[tuple[_NodeState, int]], budget: int
    ) -> tuple[list[list[Any]], int]:
        """Deltas for ``offers`` (state, from_version) in order, without gaps, within budget."""
        out: list[list[Any]] = []
        left = budget
        for state, from_v in offers:
            if from_v >= state.max_version:
                continue
            items = state.entries_after(from_v)
            head = _packed_len([state.node_id, state.generation, from_v, state.max_version, []])
            used = head + _LIST_GROWTH
            if used > left:
                continue
            wire: list[list[Any]] = []
            for key, e in items:
                value = list(e.value) if key == _K_ADDR else e.value
                item = [key, value, e.version, e.expiry_unix_ms]
                size = _packed_len(item)
                if used + size > left:
                    break
                wire.append(item)
                used += size
            truncated = len(wire) < len(items)
            if truncated and not wire:
                continue
            to_v = wire[-1][2] if truncated else state.max_version
            out.append([state.node_id, state.generation, from_v, to_v, wire])
            left -= used
        return out, budget - left

    def _scuttle_order(self, offers: list[tuple[_NodeState, int]]) -> list[tuple[_NodeState, int]]:
        """Most outstanding versions first; ties in random order (deterministic given rng)."""
        offers = sorted(offers, key=lambda o: o[0].node_id)
        keyed = [(-(s.max_version - f), self._rng.random(), s, f) for s, f in offers]
        keyed.sort(key=lambda k: (k[0], k[1]))
        return [(s, f) for _d, _r, s, f in keyed]

    def _offer_for(self, node_id: str, generation: int, max_version: int) -> int | None:
        """The from_version we can serve a peer that has (generation, max_version), or None."""
        state = self._self if node_id == self._id else None
        if state is None:
            peer = self._peers.get(node_id)
            state = None if peer is None else peer.state
        if state is None:
            return None
        if generation < state.generation:
            return 0
        if generation == state.generation and max_version < state.max_version:
            return max_version
        return None

    def _state_for(self, node_id: str) -> _NodeState:
        if node_id == self._id:
            return self._self
        return self._peers[node_id].state

    # ----- handling messages ---------------------------------------------------------------

    def handle(
        self, msg: object, now_ms: int, budget_bytes: int | None = None
    ) -> dict[str, Any] | None:
        """Dispatch any membership message; returns the reply to send back, if any."""
        if type(msg) is not dict:
            raise _fail("message must be a map")
        kind = msg.get("t")
        if kind == MSG_SYN:
            return self.on_syn(msg, now_ms, budget_bytes)
        if kind == MSG_ACK:
            return self.on_ack(msg, now_ms, budget_bytes)
        if kind == MSG_ACK2:
            self.on_ack2(msg, now_ms)
            return None
        raise _fail("unknown message type")

    def _direct_contact(self, sender: str) -> None:
        """A message sent by a node proves it is alive: stop treating it as reaped."""
        if sender != self._id:
            self._reaped.pop(sender, None)

    def on_syn(self, msg: object, now_ms: int, budget_bytes: int | None = None) -> dict[str, Any]:
        """Answer a SYN with an ACK: deltas where we are ahead, requests where we are behind."""
        m = _check_message(msg, MSG_SYN)
        complete = m.get("complete")
        if type(complete) is not bool:
            raise _fail("complete must be a bool")
        digest = _check_digest(m.get("digest"))
        sender = m["from"]
        budget = self._budget_of(budget_bytes)
        self._advance(now_ms)
        self._direct_contact(sender)
        requests: list[list[Any]] = []
        offers: list[tuple[_NodeState, int]] = []
        mentioned: set[str] = set()
        for d in digest:
            mentioned.add(d.node_id)
            if d.node_id == self._id:
                self._refute(d.generation)
                if d.generation == self._self.generation and d.max_version > self._self.max_version:
                    # Someone holds newer versions of our own generation (a restart that reused
                    # the generation): move our counter past them so our next change wins.
                    self._self.max_version = d.max_version
                from_v = self._offer_for(self._id, d.generation, d.max_version)
                if from_v is not None:
                    offers.append((self._self, from_v))
                continue
            reaped = self._reaped.get(d.node_id)
            if reaped is not None and d.generation <= reaped.generation:
                continue
            if not self._plausible(d.generation):
                continue
            peer = self._peers.get(d.node_id)
            if peer is None:
                requests.append([d.node_id, 0, 0])
                continue
            s = peer.state
            if d.generation > s.generation or (
                d.generation == s.generation and d.max_version > s.max_version
            ):
                requests.append([d.node_id, s.generation, s.max_version])
            else:
                from_v = self._offer_for(d.node_id, d.generation, d.max_version)
                if from_v is not None:
                    offers.append((s, from_v))
        unmentioned = [self._self] if self._id not in mentioned else []
        unmentioned += [self._peers[n].state for n in sorted(self._peers) if n not in mentioned]
        extra = [(s, 0) for s in unmentioned]
        if complete:
            offers += extra
            extra = []
        base = _packed_len({"t": MSG_ACK, "from": self._id, "digest": [], "deltas": []})
        room = budget - base - 2 * _LIST_GROWTH
        req_fit, _c, req_used = self._fit_digest(requests, room // 2, keep_first=False)
        room -= req_used
        deltas, used = self._pack_deltas(self._scuttle_order(offers), room)
        room -= used
        if extra:
            order = sorted(extra, key=lambda o: o[0].node_id)
            self._rng.shuffle(order)
            more, _u = self._pack_deltas(order, room)
            deltas += more
        return {"t": MSG_ACK, "from": self._id, "digest": req_fit, "deltas": deltas}

    def on_ack(
        self, msg: object, now_ms: int, budget_bytes: int | None = None
    ) -> dict[str, Any] | None:
        """Apply an ACK's deltas; answer its requests with an ACK2 (None if nothing to send)."""
        m = _check_message(msg, MSG_ACK)
        requests = _check_digest(m.get("digest"))
        deltas = _check_deltas(m.get("deltas"))
        budget = self._budget_of(budget_bytes)
        now = self._advance(now_ms)
        self._direct_contact(m["from"])
        for d in deltas:
            self._apply(d, now)
        offers: list[tuple[_NodeState, int]] = []
        for r in requests:
            from_v = self._offer_for(r.node_id, r.generation, r.max_version)
            if from_v is not None:
                offers.append((self._state_for(r.node_id), from_v))
        if not offers:
            return None
        base = _packed_len({"t": MSG_ACK2, "from": self._id, "deltas": []})
        out, _used = self._pack_deltas(self._scuttle_order(offers), budget - base - _LIST_GROWTH)
        if not out:
            return None
        return {"t": MSG_ACK2, "from": self._id, "deltas": out}

    def on_ack2(self, msg: object, now_ms: int) -> None:
        """Apply an ACK2's deltas."""
        m = _check_message(msg, MSG_ACK2)
        deltas = _check_deltas(m.get("deltas"))
        now = self._advance(now_ms)
        self._direct_contact(m["from"])
        for d in deltas:
            self._apply(d, now)

    # ----- applying deltas -----------------------------------------------------------------

    def _new_detector(self) -> PhiAccrualDetector:
        p = self._preset
        return PhiAccrualDetector(
            window_size=p.phi_window_size,
            min_std_dev_ms=p.phi_min_std_dev_ms,
            acceptable_pause_ms=p.phi_acceptable_pause_ms,
            first_heartbeat_estimate_ms=p.phi_first_heartbeat_estimate_ms,
            max_interval_ms=p.phi_max_interval_ms,
        )

    def _apply(self, d: _Delta, now: int) -> None:
        if d.node_id == self._id:
            self._refute(d.generation)
            if d.generation == self._self.generation and d.to_version > self._self.max_version:
                self._self.max_version = d.to_version
            return
        reaped = self._reaped.get(d.node_id)
        if reaped is not None and d.generation <= reaped.generation:
            return
        peer = self._peers.get(d.node_id)
        if peer is None or d.generation > peer.state.generation:
            if d.from_version != 0 or not self._plausible(d.generation):
                return
            if peer is None and (len(self._peers) >= MEMBERS_MAX or not self._admit_new_member()):
                self.refused_members += 1
                return
            restarted = peer is not None and peer.announced
            peer = _Peer(
                state=_NodeState(d.node_id, d.generation),
                detector=self._new_detector(),
                member_state=MemberState.ALIVE,
                since_ms=now,
                created_ms=now,
                restarted=restarted,
            )
            self._peers[d.node_id] = peer
            self._reaped.pop(d.node_id, None)
        state = peer.state
        if d.generation < state.generation or d.from_version > state.max_version:
            return  # stale past, or a gap we cannot fill
        if d.to_version <= state.max_version:
            return
        changed: list[tuple[str, _Entry, _Entry | None]] = []
        for key, value, version, expiry in d.entries:
            if version <= state.max_version:
                continue
            old = state.entries.get(key)
            if old is not None and old.version >= version:
                continue
            if old is None and len(state.entries) >= TAGS_PER_MEMBER_MAX:
                self.refused_tags += 1
                continue
            entry = _Entry(value, version, expiry)
            if expiry is not None:
                if expiry <= now:
                    entry.hidden = True
                self._note_expiry(expiry)
            state.entries[key] = entry
            changed.append((key, entry, old))
        state.max_version = d.to_version
        self._after_change(peer, changed, now)

    def _healthy_state(self, peer: _Peer) -> MemberState:
        status = peer.state.status
        if status is NodeStatus.LEFT:
            return MemberState.LEFT
        if status is NodeStatus.LEAVING:
            return MemberState.LEAVING
        return MemberState.ALIVE

    def _after_change(
        self, peer: _Peer, changed: list[tuple[str, _Entry, _Entry | None]], now: int
    ) -> None:
        state = peer.state
        node_id, gen = state.node_id, state.generation
        if not peer.announced:
            address = state.address
            if address is None:
                return
            peer.announced = True
            peer.detector.heartbeat(now)
            peer.member_state = self._healthy_state(peer)
            peer.since_ms = now
            self._events.append(MemberJoined(node_id, gen, address, peer.restarted))
            if peer.member_state is MemberState.LEAVING:
                self._events.append(MemberLeaving(node_id, gen))
            elif peer.member_state is MemberState.LEFT:
                self._events.append(MemberLeft(node_id, gen))
            for key, entry in sorted(state.entries.items(), key=lambda kv: kv[1].version):
                if not key.startswith(_SYS) and self._visible(entry):
                    self._events.append(
                        TagUpdated(node_id, key, entry.value, entry.version, entry.expiry_unix_ms)
                    )
            return
        for key, entry, old in changed:
            if key == _K_HB:
                if old is None or entry.value > old.value:
                    self._on_heartbeat(peer, now)
            elif key == _K_STATUS:
                self._on_status(peer, now)
            elif key.startswith(_SYS):
                continue
            elif self._visible(entry):
                self._events.append(
                    TagUpdated(node_id, key, entry.value, entry.version, entry.expiry_unix_ms)
                )
            elif old is not None and self._visible(old):
                self._events.append(TagExpired(node_id, key, entry.version))

    def _on_heartbeat(self, peer: _Peer, now: int) -> None:
        det = peer.detector
        det.heartbeat(now, learn_interval=not self._guard.spans_pause(det.last_heartbeat_ms))
        if peer.member_state in (MemberState.SUSPECT, MemberState.FAILED):
            peer.member_state = self._healthy_state(peer)
            peer.since_ms = now
            self._events.append(MemberAlive(peer.state.node_id, peer.state.generation))

    def _on_status(self, peer: _Peer, now: int) -> None:
        status = peer.state.status
        node_id, gen = peer.state.node_id, peer.state.generation
        if status is NodeStatus.LEFT and peer.member_state is not MemberState.LEFT:
            peer.member_state = MemberState.LEFT
            peer.since_ms = now
            self._events.append(MemberLeft(node_id, gen))
        elif status is NodeStatus.LEAVING and peer.member_state is MemberState.ALIVE:
            peer.member_state = MemberState.LEAVING
            peer.since_ms = now
            self._events.append(MemberLeaving(node_id, gen))
