"""Write the seed corpus (tests/fuzz/corpus/<target>/) from real encodings.

Why: a fuzzer that starts from valid inputs reaches the decoders' deep paths at once instead of
spending its time rediscovering the envelope magic. The seeds are made by the project's own
encoders and by two gossip nodes talking, so they follow the formats as they change; run
``python -m tests.fuzz.make_corpus`` after a format change. Files are named by the SHA-1 of
their content, so re-running adds only what is new; crashers found by a fuzzer are added next to
them by hand (and kept).
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from hearsay.lattice.codec import encode_entry
from hearsay.lattice.entry import Entry, Schema
from hearsay.lattice.vector import MaxVector
from hearsay.protocol import messages as msg
from hearsay.protocol import vignette
from hearsay.protocol.envelope import MessageType
from hearsay.protocol.membership import Membership
from hearsay.protocol.node import GossipNode, NodeConfig
from hearsay.protocol.presets import LOCAL
from hearsay.runtime.rmbd import PEER_REQUEST, REQUEST
from tests.fuzz.targets import COMMAND_NAMES, NOW_MS, PLAIN, SEALED, encode_command

CORPUS = Path(__file__).parent / "corpus"
VEC = Schema("vector").intern()
HLL = Schema("hll", (14,), 1 << 14).intern()
COUNTER = Schema("counter", (), 2**32, True).intern()


def _entries() -> list[Entry]:
    return [
        Entry(0, None),
        Entry(3, None, (5, 100)),
        Entry(0, VEC, slices={"": MaxVector.from_items([(1, 5), (2**31, 2**62)])}),
        Entry(1, HLL, slices={"": MaxVector.from_items([(i * 7, 1 + i % 5) for i in range(40)])}),
        Entry(0, COUNTER, slices={"n1": MaxVector.from_items([(0, 431)]), "n2": MaxVector()}),
        Entry(2, VEC, (7, 9), slices={"": MaxVector.from_dense(list(range(1, 200)), 10)}),
    ]


def _gossip_datagrams() -> list[bytes]:
    """What three real (sans-IO) nodes send each other while joining and replicating."""
    addresses = [("127.0.0.1", 7000 + i) for i in range(3)]
    nodes: dict[tuple[str, int], GossipNode] = {}
    for i, address in enumerate(addresses):
        rng = random.Random(i)
        table = Membership(f"n{i}", 1, address, LOCAL, rng, now_ms=NOW_MS)
        nodes[address] = GossipNode(
            address, rng=rng, membership=table, config=NodeConfig.from_preset(LOCAL), now_ms=NOW_MS
        )
    for address in addresses[1:]:
        nodes[address].join([addresses[0]], NOW_MS)
    seen: list[bytes] = []
    now = NOW_MS
    for step in range(60):
        now += 50
        if step == 20:
            for key, entry in zip([b"a", b"b", b"c"], _entries()[2:5], strict=False):
                nodes[addresses[0]].local_delta(key, entry, now)
        for node in nodes.values():
            if (timer := node.get_timer()) is not None and timer <= now:
                node.handle_timer(now)
        for node in nodes.values():
            for data, target in node.datagrams_to_send():
                seen.append(data)
                if target in nodes:
                    nodes[target].receive_datagram(data, node.address, now)
    return seen


def seeds() -> dict[str, list[bytes]]:
    entries = _entries()
    datagrams = _gossip_datagrams()
    by_type: dict[int, list[bytes]] = {}
    for data in datagrams:
        kind, payload = PLAIN.open(data)
        by_type.setdefault(kind, []).append(payload)
    payloads = [
        msg.join_items(msg.push_prefix(True, 7), [msg.push_item(b"k", entries[2], True)]),
        msg.join_items(b"", [msg.exchange_item(b"k", entries[3]), msg.exchange_item(b"j", None)]),
        msg.packb([1, 2, 3]),
        msg.join_items(b"", [msg.hash_item(b"k", 12345)]),
        msg.packb([9]),
    ]
    for kind, found in sorted(by_type.items()):
        if kind != MessageType.MEMBERSHIP:
            payloads.extend(found[:3])
    sealed = [
        codec.seal(kind, payload)
        for codec in (PLAIN, SEALED)
        for kind, payload in [(MessageType.PUSH, payloads[0]), (MessageType.ACK, payloads[2])]
    ]
    vector = MaxVector.from_items([(0, 1), (5, 2**40)])
    return {
        "resp": [
            encode_command([b"PING"]),
            encode_command([b"SET", b"k", b"v"]) + encode_command([b"INCRBY", b"c", b"5"]),
            encode_command([b"PFADD", b"h", b"a", b"b"])[:-3],
            b"PING\r\n",
            b"SET \"a\\x41b\" 'c d'\r\n",
            b"*-1\r\n*0\r\n$3\r\n",
            b"*1\r\n$-1\r\n",
        ],
        "envelope": sealed + datagrams[:5],
        "messages": payloads,
        "membership": by_type.get(MessageType.MEMBERSHIP, [])[:8],
        "gossip_node": datagrams[:: max(1, len(datagrams) // 12)] + sealed[:1],
        "entry": [encode_entry(entry) for entry in entries],
        "vignette": [
            vignette.encode("k", vector, full=True),
            vignette.encode_read("n:%"),
            vignette.encode_read("a*b"),
            vignette.encode("x", MaxVector(), full=False, ttl=1),
        ],
        "rmbd": [
            REQUEST.pack(0, b"key"),
            REQUEST.pack(1, b"key"),
            PEER_REQUEST.pack(3, b"127.0.0.1", 7946),
            b"\x02",
        ],
        "dispatch": [
            bytes((COMMAND_NAMES.index(name),)) + args
            for name in COMMAND_NAMES
            for args in (b"k", b"k 1 2", b"k a b c")
        ]
        + [
            bytes((COMMAND_NAMES.index(name),)) + args
            for name, args in [
                (b"CMS.INITBYPROB", b"k 0.01 0.01"),
                (b"CMS.INITBYDIM", b"k 16 4"),
                (b"BF.RESERVE", b"k 0.01 100"),
                (b"VMAX", b"k 1 2 3 4"),
                (b"SCAN", b"0 MATCH k* COUNT 10"),
                (b"CLIENT", b"SETNAME x"),
                (b"CONFIG", b"GET *"),
            ]
            if name in COMMAND_NAMES
        ],
        "http": [
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /status?x=1 HTTP/1.0\r\n\r\n",
            b"POST / HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ],
    }


def write(corpus: Path = CORPUS) -> int:
    added = 0
    for target, items in seeds().items():
        folder = corpus / target
        folder.mkdir(parents=True, exist_ok=True)
        for data in items:
            path = folder / hashlib.sha1(data).hexdigest()
            if not path.exists():
                path.write_bytes(data)
                added += 1
    return added


if __name__ == "__main__":
    print(f"{write()} new seed files under {CORPUS}", file=sys.stderr)
