"""Cluster membership: scuttlebutt reconciliation of per-node state, SWIM liveness.

Why this package exists: every node must learn who else is in the cluster, where they listen,
whether they are alive, and the small key/value tags they publish (grapevine's local state),
without a coordinator and over lossy UDP. This is the sans-IO core of that: the driver passes
``now_ms`` and owns the sockets; :class:`Membership` turns calls into typed messages and
events. Its parts, each with one job:

- :mod:`.wire`: the messages (NamedTuples, positional msgpack arrays) and the checks of every
  field a peer sends;
- :mod:`.table`: every node's versioned state (merging deltas, expiring tags), the reaped
  memory, the admission of new nodes;
- :mod:`.liveness`: member states and every legal transition in one table;
- :mod:`.swim`: SWIM's broadcast queue, Lifeguard's suspicion timeouts and local health
  (:mod:`.failure_detector`: the local-pause guard);
- :mod:`.push_pull`: when whole member tables are exchanged (joining, then now and then) and
  which answers vouch for the members they bring;
- :mod:`.recent`: the members whose state changed here lately, which an ACK offers a peer
  whose digest was only a sample;
- :mod:`.events`: what the driver is told (MemberJoined, MemberFailed, TagUpdated...);
- :mod:`.live_set`: the live, confirmed member addresses data gossip picks from, kept in step
  with every event (the one live-peer set: the data plane keeps no copy);
- :mod:`.facade`: :class:`Membership`, the reconciliation that drives the others.

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

Liveness (SWIM with Lifeguard, see :mod:`.swim` and docs/design.md): each node probes one
member per ``probe_interval_ms`` (directly, then through ``indirect_checks`` others), suspects
one nobody got an answer from, and spreads suspect / dead / alive notices piggybacked on
probes and in small gossip rounds. The heartbeat counter is the node's incarnation: it moves
only when the node refutes a suspicion about itself, and a higher one (by notice or by state
sync) makes a suspect or failed member alive again. A suspicion that is not refuted in time
becomes a conviction (failed); a graceful leave is the status ``left``; failed and left
members are reaped (forgotten) ``dead_node_reap_ms`` after (:data:`.liveness.TRANSITIONS`
lists every move). A reaped ``(node, generation)`` is remembered for ``reaped_memory_ms`` so
stale gossip cannot resurrect it; a higher generation, or a message sent by the node itself,
brings it back. After a local pause the node accuses nobody for a while
(:class:`~hearsay.protocol.membership.failure_detector.PauseGuard`).

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

Everything is deterministic given the ``random.Random`` passed in and the call sequence: the
id list random picks are made from changes only through the table's calls.
"""

from hearsay.protocol.membership.events import (
    MemberAlive,
    MemberFailed,
    MemberInfo,
    MemberJoined,
    MemberLeaving,
    MemberLeft,
    MemberReaped,
    MembershipEvent,
    MemberSuspect,
    TagExpired,
    TagUpdated,
)
from hearsay.protocol.membership.facade import (
    GENERATION_AHEAD_MAX_MS,
    Membership,
    RandomSource,
)
from hearsay.protocol.membership.live_set import AddressSet, LiveSet
from hearsay.protocol.membership.liveness import MemberState, NodeStatus
from hearsay.protocol.membership.table import (
    MEMBERS_MAX,
    NEW_MEMBERS_BURST,
    NEW_MEMBERS_PER_S,
    TAGS_PER_MEMBER_MAX,
)
from hearsay.protocol.membership.wire import (
    TAG_ENTRY_BYTES_MAX,
    TAG_KEY_CHARS_MAX,
    Ack,
    Ack2,
    Address,
    Delta,
    DigestItem,
    MembershipDecodeError,
    MessageKind,
    Syn,
    TagValue,
    WireEntry,
)

__all__ = [
    "GENERATION_AHEAD_MAX_MS",
    "MEMBERS_MAX",
    "NEW_MEMBERS_BURST",
    "NEW_MEMBERS_PER_S",
    "TAGS_PER_MEMBER_MAX",
    "TAG_ENTRY_BYTES_MAX",
    "TAG_KEY_CHARS_MAX",
    "Ack",
    "Ack2",
    "Address",
    "AddressSet",
    "Delta",
    "DigestItem",
    "LiveSet",
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
    "MessageKind",
    "NodeStatus",
    "RandomSource",
    "Syn",
    "TagExpired",
    "TagUpdated",
    "TagValue",
    "WireEntry",
]
