"""One simulated node: a real :class:`~hearsay.engine.replica.Replica` with the real command
table, its gossip node and a simulated store.

Why this module exists: the simulator must run what a node runs (commands through the real
command table and the replica's one write funnel, the gossip core with real membership, the
replica's flushes into storage) without sockets, threads or the wall clock; this is where a
simulated node is put together, the same way the runtime puts a real one together.
"""

from __future__ import annotations

import random

from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Entry
from hearsay.lattice.keyspace import Keyspace
from hearsay.persist.identity import NodeIdentity
from hearsay.protocol.envelope import Keyring
from hearsay.protocol.membership import Address, Membership
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.resp.commands import CommandRegistry, install_connection_commands
from hearsay.resp.key_commands import install_key_commands
from hearsay.resp.sketch_commands import install_sketch_commands
from hearsay.sim.store import SimStore

CLUSTER = "hearsay"


def data_commands() -> CommandRegistry:
    """The command table of a node, less the server and cluster commands (INFO, WAIT...)."""
    registry = CommandRegistry()
    install_connection_commands(registry)
    install_key_commands(registry)
    install_sketch_commands(registry)
    return registry


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
    if membership is not None:
        replica.attach_gossip(
            address,
            config=config,
            cluster=CLUSTER,
            keyring=keyring,
            membership=membership,
            rng=rng,
            nonce_source=rng.randbytes,
            now_ms=now_ms,
        )
    else:  # static peer lists (--no-membership): a diagnostic the runtime never runs
        replica.node = GossipNode(
            address,
            rng=rng,
            keyspace=keyspace,
            config=config,
            cluster=CLUSTER,
            keyring=keyring,
            nonce_source=rng.randbytes,
            now_ms=now_ms,
        )
    return replica
