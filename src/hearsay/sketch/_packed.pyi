"""Types of the C extension ``_packed.c`` (reads over a sketch's packed sparse slices);
:mod:`hearsay.lattice.vector` documents the packed form, :mod:`hearsay.sketch.cuckoo` and
:mod:`hearsay.sketch.topk` hold the Python reference of each read."""

def first_room(
    sources: list[bytes],
    occupied: dict[int, int] | None,
    h: int,
    alt: int,
    geometry: bytes,
    readable: int,
    subs: int,
    size: int,
    /,
) -> tuple[int, int, int] | None:
    """The first of an item's places, as ``_Batch.add`` walks them, whose bucket holds fewer
    than ``size`` live copies: ``(sub-filter, global bucket, live copies)``; None when none
    has room. Buckets read from ``sources`` are remembered in ``occupied`` (None: a batch of one
    item, which has nothing to remember)."""

def add_one(
    sources: list[bytes],
    overlays: list[dict[int, int] | None],
    own: int,
    h: int,
    fp: int,
    alt: int,
    geometry: bytes,
    size: int,
    only_new: bool,
    run: dict[int, int] | None,
    /,
) -> tuple[bool, int, int] | None:
    """CF.ADD (or ADDNX, ``only_new``) of one item hashed ``h`` (fingerprint ``fp``, partner
    offset ``alt``) over sparse slices, each its packed pairs in ``sources`` and in
    ``overlays`` the overlay of pairs written since (``MaxVector.sparse_view``: a dict with an
    ``order`` list, or None), as ``CuckooFilter._add_one`` places it (``own``: the index of the
    writer's slice, -1 for none; ``run``, a run's counts so far in that slice, a dict with an
    ``order`` list, on top of its bytes and overlay, or None): ``(True, 0, 0)`` when
    ``only_new`` finds a copy of its class in a sub-filter in use; else ``(False, add slot,
    the writer's add count raised there)`` at its first place with fewer than ``size`` live
    copies; None when no place has room."""
