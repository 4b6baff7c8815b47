"""One simulated node: a real :class:`~hearsay.engine.replica.Replica` with the real command
table, its gossip node and a simulated store.

Why this module exists: the simulator must run what a node runs (commands through the real
command table and the replica's one write funnel, the gossip core with real membership, the
replica's flushes into storage) without sockets, threads or the wall clock; this is where a
simulated node is put together, the same way the runtime puts a real one together.
"""

from __future__ import annotations

import random
from typing import Any

from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import Keyspace
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.membership import Address, Membership
from hearsay.protocol.node import NodeConfig
from hearsay.resp.commands import ClientContext, CommandRegistry
from hearsay.resp.server_commands import build_registry
from hearsay.sim.store import SimStore

CLUSTER = "hearsay"


class _SimServer:
    """The server a simulated node reports to INFO, CONFIG GET and CLIENT LIST, and asks to
    purge memory: nothing (the workload sends none of them; the data commands are what the
    simulator exercises)."""

    def info_sections(self) -> dict[str, dict[str, Any]]:
        return {}

    def config_values(self) -> dict[str, str]:
        return {}

    def client_contexts(self) -> list[ClientContext]:
        return []

    def close_clients(self, client_ids: set[int]) -> None:
        return None

    def release_free_memory(self) -> None:
        return None  # (many simulated nodes share one process: not theirs to trim)


def command_table() -> CommandRegistry:
    """A node's command table, as the runtime builds it, less the cluster commands (WAIT,
    HEARSAY.JOIN...: the simulator's clients never wait on peers)."""
    return build_registry(_SimServer())


def start_replica(
    address: Address,
    *,
    identity: NodeIdentity,
    store: SimStore,
    commands: CommandRegistry,
    rng: random.Random,
    config: NodeConfig,
    keyring: Keyring | None,
    membership: Membership | None,
    now_ms: int,
) -> Replica:
    """A replica holding what ``store`` synced, gossiping as ``address``."""
    keyspace = Keyspace()
    loaded: dict[bytes, Entry] = store.load()
    for key, entry in loaded.items():
        keyspace.merge(key, entry)
    replica = Replica(identity, keyspace, storage=store, commands=commands)
    replica.attach_gossip(  # (membership None: static peer lists, --no-membership)
        address,
        config=config,
        cluster=CLUSTER,
        keyring=keyring,
        membership=membership,
        rng=rng,
        nonce_source=rng.randbytes,
        now_ms=now_ms,
    )
    return replica
