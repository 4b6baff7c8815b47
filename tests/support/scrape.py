"""Read a node's /metrics as Prometheus does: parsed, not matched line by line."""

from __future__ import annotations

import urllib.request

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.nodes import NodeProcess


def scrape(node: NodeProcess) -> dict[str, Metric]:
    """Every metric family the node exports, by name (counters without ``_total``)."""
    with urllib.request.urlopen(f"http://{node.http}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(
    families: dict[str, Metric], sample: str, missing: float | None = None, **labels: str
) -> float:
    """The value of the one sample called ``sample`` with exactly ``labels`` (``missing``,
    when given, if there is none yet)."""
    found = [
        s.value
        for family in families.values()
        for s in family.samples
        if s.name == sample and s.labels == labels
    ]
    if not found and missing is not None:
        return missing
    assert len(found) == 1, (sample, labels, found)
    return found[0]
