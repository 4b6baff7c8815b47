"""The gossip core's parts; :class:`hearsay.protocol.node.GossipNode` routes to them.

Why this package exists: one class doing seven jobs held seven timers and seven retry tables
side by side. Each part here owns its state and its deadline, and the parts never import each
other (``lint-imports`` checks it): what one needs of another, the router passes in as a
callable. Shared by all: :mod:`.config` (settings, counters), :mod:`.shared` (the bounded
table, content hashes, ``NEVER``), :mod:`.outbox` (queues, clock, sealing, packing, pacing) and
:mod:`.peers` (seeded picks from the peers gossip goes to: membership's live-peer set, or a
static list).

- :mod:`.rumours`: client writes waiting for the drain, paced rumours; PUSH, EXCHANGE, streams.
- :mod:`.tail`: recent keys and DIGESTs, keys wanted and their pulls, lately changed keys; the
  gossip round's deadline.
- :mod:`.anti_entropy`: anti-entropy rounds and their deadline; AE_GROUPS, AE_BUCKETS, AE_KEYS.
- :mod:`.acks`: client writes' ack records, ack ids, ack and cover retries; ACK.
- :mod:`.vignette_dialect`: vignette neighbours, presence and its deadline, searches.
- :mod:`.membership_link`: membership's ticks and syncs, its probes of unconfirmed members and
  repairs with members that came back.
"""
