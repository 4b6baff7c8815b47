"""HEARSAY.FORGET: record that a node is gone for good, so its slices get folded.

``HEARSAY.FORGET <node-id> [AT <unix-ms>]`` records, on every node (a replicated tombstone
at a reserved key), that the node with that id (INFO server's ``run_id``) departed at
``unix-ms`` (default: now), as Cassandra's ``removenode``. Once that time is older than
``--retire-grace-s``, every node folds the node's slices of count-min, counter, cuckoo and
t-digest keys into one retired slice per key, and refuses the node's late slices from then on (see
:mod:`hearsay.engine.retire`). The node must never come back with that id: its writes would
be refused. Replies 1 when recorded, 0 when the node's departure was known already (the
time recorded first is kept).
"""

from __future__ import annotations

import re
from typing import Final

from hearsay.persist.identity import NODE_ID_HEX_CHARS
from hearsay.resp import messages
from hearsay.resp.commands import ClientContext, CommandError, CommandRegistry
from hearsay.resp.key_commands import db_of, integer_arg
from hearsay.resp.replies import Reply

_NODE_ID: Final = re.compile(rf"[0-9a-f]{{{NODE_ID_HEX_CHARS}}}")


def install_retire_commands(registry: CommandRegistry) -> None:
    """Register HEARSAY.FORGET."""

    @registry.command("HEARSAY.FORGET", arity=-2, flags=("admin", "write"), group="cluster",
                      summary="Records that a node departed for good (its slices fold "
                      "after --retire-grace-s).")  # fmt: skip
    def forget(ctx: ClientContext, args: list[bytes]) -> Reply:
        if len(args) not in (2, 4) or (len(args) == 4 and args[2].upper() != b"AT"):
            raise CommandError(messages.SYNTAX_ERROR)
        node_id = args[1].decode("ascii", "replace")
        if not _NODE_ID.fullmatch(node_id):
            raise CommandError(messages.NOT_A_NODE_ID.format(NODE_ID_HEX_CHARS))
        replica = db_of(ctx)
        if node_id == replica.identity.node_id:
            raise CommandError(messages.FORGET_SELF)
        departed_ms = ctx.now_ms if len(args) == 2 else integer_arg(args[3])
        if not 0 < departed_ms <= ctx.now_ms:
            raise CommandError(messages.FORGET_TIME)
        return int(replica.forget(node_id, departed_ms, ctx.now_ms))
