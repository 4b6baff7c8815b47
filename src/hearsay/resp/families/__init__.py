"""The sketch data commands over RESP, one module per family: what clients see of each family.

Why: argument parsing and reply shapes are where clients see hearsay, and they must be
Redis's (PF*, counters, GET/SET) and RedisBloom's (BF.*, CMS.*) to the byte, including the
order in which arguments are checked and which error text each mistake gets (every text lives
in :mod:`hearsay.resp.messages`). What a command *does* lives in the same family's module of
:mod:`hearsay.engine.families`; a handler here only parses, calls one operation and shapes the
reply, and its declaration (:meth:`~hearsay.resp.commands.CommandRegistry.command`) says which
reply each engine error gets. Handlers are total: every client input gets a reply.

hearsay-specific commands: ``HEARSAY.PFRESERVE key precision`` (an HLL of precision 4..18),
``BF.MERGE dest src [src ...]`` (union of equal-shaped filters), ``VMAX``/``VGET`` (vignette
vectors). Departures from Redis forced by the lattice are listed in each command's summary
(``COMMAND DOCS``) and in the engine's family modules.
"""

from __future__ import annotations

from hearsay.resp.commands import CommandRegistry
from hearsay.resp.families import (
    bloom,
    counter,
    countmin,
    cuckoo,
    hll,
    strings,
    tdigest,
    topk,
    vector,
    window,
    window_topk,
)

__all__ = ["install_family_commands"]


def install_family_commands(registry: CommandRegistry) -> None:
    """Register every family's data commands on ``registry`` (COMMAND lists them in order)."""
    hll.install_hll_commands(registry)
    strings.install_string_commands(registry)
    counter.install_counter_commands(registry)
    vector.install_vector_commands(registry)
    bloom.install_bloom_commands(registry)
    countmin.install_countmin_commands(registry)
    tdigest.install_tdigest_commands(registry)
    cuckoo.install_cuckoo_commands(registry)
    topk.install_topk_commands(registry)
    window.install_window_commands(registry)  # after the PF*, BF.* and CMS.* it wraps
    window_topk.install_window_topk_commands(registry)  # after the TOPK.* it wraps
