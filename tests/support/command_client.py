"""One client's view of the command table, minus the socket: requests through
``CommandRegistry.dispatch`` of the table a node builds (``build_registry``), over an in-memory
replica. Shared by the command tests of several layers."""

from __future__ import annotations

from hearsay.engine.interfaces import WaitForAcks
from hearsay.engine.replica import Replica
from hearsay.persist.identity import NodeIdentity
from hearsay.resp.commands import ClientContext, CommandRegistry
from hearsay.resp.replies import ErrorReply, Reply
from hearsay.resp.server_commands import build_registry

NOW_MS = 1_700_000_000_000


class NoServer:
    """The server a node would hand the command table: no sections, no clients."""

    def info_sections(self) -> dict[str, dict[str, object]]:
        return {}

    def config_values(self) -> dict[str, str]:
        return {}

    def client_contexts(self) -> list[ClientContext]:
        return []

    def close_clients(self, client_ids: set[int]) -> None:
        raise AssertionError("no connections to close")

    releases = 0
    """MEMORY PURGEs asked of this server."""

    def release_free_memory(self) -> None:
        self.releases += 1


REGISTRY: CommandRegistry = build_registry(NoServer())


class Client:
    """One connection's context over one database."""

    def __init__(self, node_id: str = "0123456789abcdef", db: Replica | None = None) -> None:
        self.db = db if db is not None else Replica(NodeIdentity(node_id, 1))
        self.ctx = ClientContext(client_id=1, db=self.db, now_ms=NOW_MS)

    def __call__(self, *args: bytes | str | int) -> Reply:
        raw = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        reply = REGISTRY.dispatch(self.ctx, raw)
        assert not isinstance(reply, WaitForAcks), "WAIT needs a node's runtime"
        return reply

    def ok(self, *args: bytes | str | int) -> Reply:
        reply = self(*args)
        assert not isinstance(reply, ErrorReply), (args, reply)
        return reply
