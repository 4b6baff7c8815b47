"""One simulated node: the real database, command table and gossip core, driven sans-IO.

Why this module exists: the simulator must run what a node runs (commands through the real
command table, the database's write path, the gossip core) and see what the node would hand
its storage (``take_dirty``), without sockets, threads or the wall clock.
"""

from __future__ import annotations

import random

from hearsay.engine.database import Database
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import Keyspace
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.membership import Address, Membership
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.resp.commands import (
    ClientContext,
    CommandRegistry,
    Deferred,
    install_connection_commands,
)
from hearsay.resp.key_commands import install_key_commands
from hearsay.resp.replies import Reply
from hearsay.resp.sketch_commands import install_sketch_commands


def data_commands() -> CommandRegistry:
    """The command table of a node, less the server and cluster commands (INFO, WAIT...)."""
    registry = CommandRegistry()
    install_connection_commands(registry)
    install_key_commands(registry)
    install_sketch_commands(registry)
    return registry


class SimNode:
    """A node's database and gossip core; the driver feeds it and collects what it wants."""

    def __init__(
        self,
        address: Address,
        *,
        node_id: str,
        generation: int,
        origin: str,
        registry: CommandRegistry,
        rng: random.Random,
        config: NodeConfig,
        keyring: Keyring | None,
        membership: Membership | None,
        loaded: dict[bytes, Entry],
        now_ms: int,
    ) -> None:
        keyspace = Keyspace()
        for key, entry in loaded.items():
            keyspace.merge(key, entry)
        self.database = Database(NodeIdentity(node_id, generation, write_origin=origin), keyspace)
        self.gossip = GossipNode(
            address,
            rng=rng,
            keyspace=keyspace,
            config=config,
            keyring=keyring,
            membership=membership,
            now_ms=now_ms,
        )
        self.registry = registry
        self.session = ClientContext(client_id=1, db=self.database)
        self.dirty: set[bytes] = set()
        self.now_ms = now_ms
        self.database.on_local_delta = self._local_delta
        self.gossip_deletes = True
        """False plants a bug (a test hook): DEL is applied and stored, never gossiped."""

    @property
    def keyspace(self) -> Keyspace:
        return self.database.keyspace

    def _local_delta(self, key: bytes, delta: Entry) -> int | None:
        self.dirty.add(key)
        if not self.gossip_deletes and delta.schema is None:
            return None
        return self.gossip.local_delta(key, delta, self.now_ms)

    def execute(self, args: list[bytes], now_ms: int) -> Reply | Deferred:
        """Run one client command through the real command table."""
        self.now_ms = now_ms
        self.session.now_ms = now_ms
        return self.registry.dispatch(self.session, args)

    def expire_due(self, now_ms: int) -> list[bytes]:
        """The housekeeping sweep: keys whose deadline passed become tombstones."""
        swept = [key for key, _ in self.keyspace.expire_due(now_ms)]
        self.dirty.update(swept)
        return swept

    def take_dirty(self) -> dict[bytes, Entry | None]:
        """Every key changed since the last call, with its entry now, for the store."""
        dirty, self.dirty = self.dirty, set()
        entry = self.keyspace.entry
        return {key: entry(key) for key in dirty}
