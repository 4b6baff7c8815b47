"""The one view registry (hearsay.sketch.views): schema -> view, cached and bounded."""

from __future__ import annotations

import pytest

from hearsay.base.errors import SketchParameterError
from hearsay.lattice.entry import Schema
from hearsay.sketch import schemas, views
from hearsay.sketch.bloom import BloomFilter
from hearsay.sketch.countmin import CountMinSketch
from hearsay.sketch.hll_view import HyperLogLog


def test_one_view_per_schema_of_the_right_family() -> None:
    cms = schemas.cms(64, 4)
    view = views.view_as(cms, CountMinSketch)
    assert views.view_for(cms) is view
    assert view.schema is cms
    assert views.view_as(schemas.hll(10), HyperLogLog).precision == 10
    with pytest.raises(SketchParameterError, match="is not a BloomFilter"):
        views.view_as(cms, BloomFilter)
    with pytest.raises(SketchParameterError, match="unknown sketch kind"):
        views.view_for(Schema("newer-kind"))


def test_the_view_cache_is_bounded_however_many_shapes_peers_invent() -> None:
    shapes = views.VIEWS_CACHED_MAX + 10
    for width in range(1, shapes + 1):
        views.view_for(schemas.cms(width, 1))
        assert len(views._VIEWS) <= views.VIEWS_CACHED_MAX
    last = schemas.cms(shapes, 1)
    assert views.view_for(last) is views.view_for(last)  # still cached after a start-over
