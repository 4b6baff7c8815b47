"""Cluster commands: WAIT, HEARSAY.MEMBERS / JOIN / LEAVE / FORCELEAVE, and per-node state
(grapevine's setLocalState / getLocalState / peerValue / peerKeys) as HEARSAY.SETSTATE /
GETSTATE / PEERVALUE / PEERKEYS.

The running node answers through a :class:`ClusterControl` (the runtime implements it around
the gossip driver), so this module stays free of sockets and event loops. WAIT needs no
control: it answers :class:`~hearsay.engine.interfaces.WaitForAcks`, which the engine's
``Replica.execute`` turns into the count or the wait for the session's latest write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hearsay.engine.interfaces import WaitForAcks
from hearsay.protocol.membership import TAG_ENTRY_BYTES_MAX, TAG_KEY_CHARS_MAX
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry
from hearsay.resp.key_commands import integer_arg
from hearsay.resp.replies import OK, Reply, SimpleString


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One row of HEARSAY.MEMBERS."""

    name: str
    address: str
    state: str  # alive | suspect | failed | left
    phi: float
    generation: int


class ClusterControl(Protocol):
    """What the running node offers the cluster commands."""

    def members(self) -> list[MemberRow]: ...

    def join(self, address: str) -> None:
        """Join through ``host:port`` in the background (raises HearsayError on a malformed
        address; a name is resolved, and the join retried, in the background)."""
        ...

    def leave(self) -> None: ...

    def force_leave(self, node: str) -> bool:
        """Mark a failed member left (Serf's force-leave); False when ``node`` is unknown.
        Raises HearsayError for a member that is not failed (or this node itself)."""
        ...

    def set_state(self, key: str, value: bytes, expiry_unix_ms: int | None, now_ms: int) -> None:
        """Publish a state key (raises HearsayError when the node cannot hold it: too many
        keys, or key and value too large together)."""
        ...

    def peer_value(self, node: str, key: str) -> bytes | None: ...

    def peer_keys(self, node: str) -> list[str] | None:
        """The node's state keys, or None when the node is unknown."""
        ...

    def node_name(self) -> str: ...


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise CommandError(f"ERR {what} must be UTF-8 text") from None


def _state_key(data: bytes) -> str:
    """A state key a node can publish: gossip reserves keys that start with NUL."""
    key = _text(data, "state key")
    if not 0 < len(key) <= TAG_KEY_CHARS_MAX:
        raise CommandError(f"ERR state key must be 1..{TAG_KEY_CHARS_MAX} characters")
    if key.startswith("\0"):
        raise CommandError("ERR state key must not start with a NUL byte")
    return key


def install_cluster_commands(registry: CommandRegistry, cluster: ClusterControl) -> None:
    """Register WAIT and the HEARSAY.* cluster commands."""

    @registry.command("WAIT", arity=3, flags=("noscript",), group="generic",
                      summary="Waits until peers hold this client's writes.")  # fmt: skip
    def wait(ctx: ClientContext, args: list[bytes]) -> Reply | WaitForAcks:
        peers = integer_arg(args[1])
        timeout_ms = integer_arg(args[2], messages.TIMEOUT_NOT_INTEGER)
        if peers < 0:
            raise CommandError(messages.NOT_AN_INTEGER)
        if timeout_ms < 0:
            raise CommandError(messages.TIMEOUT_NEGATIVE)
        return WaitForAcks(peers, timeout_ms)

    @registry.command("HEARSAY.MEMBERS", arity=1, flags=("readonly", "fast"), group="cluster",
                      summary="Every member: name, address, state, phi, generation.")  # fmt: skip
    def members(ctx: ClientContext, args: list[bytes]) -> Reply:
        return [
            [row.name.encode(), row.address.encode(), row.state.encode(),
             f"{row.phi:.3f}".encode(), row.generation]
            for row in cluster.members()
        ]  # fmt: skip

    @registry.command("HEARSAY.JOIN", arity=2, flags=("admin",), group="cluster",
                      summary="Joins through a peer at host:port (names retried).")  # fmt: skip
    def join(ctx: ClientContext, args: list[bytes]) -> Reply:
        cluster.join(_text(args[1], "address"))
        return OK

    @registry.command("HEARSAY.LEAVE", arity=1, flags=("admin",), group="cluster",
                      summary="Announces that this node leaves the cluster.")  # fmt: skip
    def leave(ctx: ClientContext, args: list[bytes]) -> Reply:
        cluster.leave()
        return OK

    @registry.command("HEARSAY.FORCELEAVE", arity=2, flags=("admin",), group="cluster",
                      summary="Marks a failed member left on every node.")  # fmt: skip
    def forceleave(ctx: ClientContext, args: list[bytes]) -> Reply:
        if not cluster.force_leave(_text(args[1], "node")):
            raise CommandError(messages.NO_SUCH_NODE)
        return OK

    @registry.command("HEARSAY.SETSTATE", arity=-3, flags=("write", "fast"), group="cluster",
                      summary="Sets a state key of this node, maybe until PXAT.")  # fmt: skip
    def setstate(ctx: ClientContext, args: list[bytes]) -> Reply:
        expiry: int | None = None
        if len(args) == 5 and args[3].upper() == b"PXAT":
            expiry = integer_arg(args[4])
            if expiry <= 0:
                raise CommandError(messages.invalid_expire_time("hearsay.setstate"))
        elif len(args) != 3:
            raise CommandError(messages.SYNTAX_ERROR)
        key = _state_key(args[1])
        if len(args[2]) > TAG_ENTRY_BYTES_MAX:
            raise CommandError(f"ERR state value longer than {TAG_ENTRY_BYTES_MAX} bytes")
        cluster.set_state(key, args[2], expiry, ctx.now_ms)
        return OK

    @registry.command("HEARSAY.GETSTATE", arity=2, flags=("readonly", "fast"), group="cluster",
                      summary="Reads this node's state key.")  # fmt: skip
    def getstate(ctx: ClientContext, args: list[bytes]) -> Reply:
        return cluster.peer_value(cluster.node_name(), _text(args[1], "state key"))

    @registry.command("HEARSAY.PEERVALUE", arity=3, flags=("readonly", "fast"), group="cluster",
                      summary="Reads a state key of any member.")  # fmt: skip
    def peervalue(ctx: ClientContext, args: list[bytes]) -> Reply:
        return cluster.peer_value(_text(args[1], "node"), _text(args[2], "state key"))

    @registry.command("HEARSAY.PEERKEYS", arity=2, flags=("readonly", "fast"), group="cluster",
                      summary="The state keys of any member.")  # fmt: skip
    def peerkeys(ctx: ClientContext, args: list[bytes]) -> Reply:
        keys = cluster.peer_keys(_text(args[1], "node"))
        if keys is None:
            raise CommandError(messages.NO_SUCH_NODE)
        return [key.encode() for key in keys]

    @registry.command("HEARSAY.NODE", arity=1, flags=("readonly", "fast"), group="cluster",
                      summary="This node's name.")  # fmt: skip
    def node(ctx: ClientContext, args: list[bytes]) -> Reply:
        return SimpleString(cluster.node_name())
