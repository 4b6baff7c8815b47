"""rmbd's client datagrams (``--rmbd-port``): add to and count a replicated count-min sketch.

rmbd (a seed system) kept one count-min sketch per server and took UDP datagrams of a type
byte and a 140-byte pascal string (``!B140p``, network byte order here):

- ``0`` add: count one occurrence of the key;
- ``1`` count: reply ``!140pL``: the key and its approximate count;
- ``3`` peer (``!B140pH``): a peer's host and port; hearsay joins it as a gossip peer, only
  with ``--rmbd-peer``: rmbd datagrams carry no authentication, and without the flag anyone
  who reaches the rmbd port could make the node send gossip to any address.

rmbd's own row sync (``2``) and ack (``4``) are not needed (hearsay replicates by gossip,
without rmbd's lost concurrent increments) and are ignored, as are short or unknown
datagrams. The sketch lives under the hearsay key ``rmbd`` (CMS width x depth, additive per
node), so CMS.QUERY over RESP answers the same counts.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Final, cast

from hearsay.base.errors import HearsayError
from hearsay.engine import sketch_ops
from hearsay.engine.replica import Replica
from hearsay.lattice.entry import Schema
from hearsay.runtime.clock import unix_ms
from hearsay.sketch.countmin import CountMinSketch

log = logging.getLogger(__name__)

RMBD_KEY: Final = b"rmbd"
ADD: Final = 0
COUNT: Final = 1
PEER: Final = 3
REQUEST: Final = struct.Struct("!B140p")
PEER_REQUEST: Final = struct.Struct("!B140pH")
COUNT_REPLY: Final = struct.Struct("!140pL")
COUNT_MAX: Final = (1 << 32) - 1


class RmbdProtocol(asyncio.DatagramProtocol):
    """Serves rmbd clients from the node's database."""

    def __init__(
        self,
        database: Replica,
        width: int,
        depth: int,
        join: Callable[[str], None],
        flush: Callable[[], None],
        *,
        peer_enabled: bool = False,
    ) -> None:
        self._database = database
        self._peer_enabled = peer_enabled
        self._schema: Schema = CountMinSketch(width, depth).schema
        self._join = join
        self._flush = flush
        self._transport: asyncio.DatagramTransport | None = None
        self.ignored = 0
        self.peers_refused = 0
        """PEER datagrams ignored because ``--rmbd-peer`` is off."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # uvloop: no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            self._handle(data, addr)
        except HearsayError as error:  # e.g. the key holds another type: ignore, as rmbd would
            self.ignored += 1
            log.debug("rmbd datagram from %s refused: %s", addr, error)

    def _handle(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if not data:
            self.ignored += 1
            return
        kind = data[0]
        now = unix_ms()
        if kind in (ADD, COUNT) and len(data) == REQUEST.size:
            _, key = REQUEST.unpack(data)
            if kind == ADD:
                self._ensure_sketch(now)
                sketch_ops.cms_incrby(self._database, RMBD_KEY, [key], [1], now)
                self._flush()
                return
            count = self._count(key, now)
            if self._transport is not None:
                self._transport.sendto(COUNT_REPLY.pack(key, min(count, COUNT_MAX)), addr)
            return
        if kind == PEER and len(data) == PEER_REQUEST.size:
            if not self._peer_enabled:
                self.peers_refused += 1
                log.debug("rmbd PEER from %s ignored: --rmbd-peer is off", addr)
                return
            _, host, port = PEER_REQUEST.unpack(data)
            self._join(f"{host.decode('latin-1')}:{port}")
            return
        self.ignored += 1

    def _ensure_sketch(self, now_ms: int) -> None:
        entry = self._database.get(RMBD_KEY, now_ms)
        if entry is None:
            width, depth = self._schema.params[:2]
            sketch_ops.cms_init(self._database, RMBD_KEY, width, depth, now_ms)

    def _count(self, key: bytes, now_ms: int) -> int:
        if self._database.get(RMBD_KEY, now_ms) is None:
            return 0
        return sketch_ops.cms_query(self._database, RMBD_KEY, [key], now_ms)[0]


async def start_rmbd(
    host: str,
    port: int,
    protocol: RmbdProtocol,
) -> tuple[asyncio.DatagramTransport, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=(host, port))
    bound = transport.get_extra_info("sockname")
    return transport, (str(bound[0]), int(bound[1]))
