"""A t-digest's greedy merge in Python: the statement ``_tdigest.merge_greedy`` (C) runs, step
for step, as :func:`hearsay.sketch.tdigest.compress` ran it before it moved to C. The tests hold
the C to it, double for double."""

from __future__ import annotations

import math


def merge_greedy(
    means: list[float], weights: list[float], middle: float, tail: float
) -> tuple[list[float], list[float]]:
    """Centroids sorted by mean merged greedily, each within ``max(1, N * min(middle, tail *
    q))`` (``N`` the total weight, ``q`` the weight on its nearer side)."""
    total = math.fsum(weights)
    out_means = [means[0]]
    out_weights = [weights[0]]
    mean_now, weight_now = means[0], weights[0]  # the current centroid (written back below)
    before = 0.0  # the weight of every centroid before the current one
    for mean, weight in zip(means[1:], weights[1:], strict=True):
        grown = weight_now + weight
        nearer = total - before - grown
        nearer = min(nearer, before)
        share = min(tail * nearer / total, middle)
        if grown <= total * share or grown <= 1.0:  # within max(1, its bound)
            mean_now += (mean - mean_now) * weight / grown
            weight_now = grown
        else:
            out_means[-1], out_weights[-1] = mean_now, weight_now
            before += weight_now
            mean_now, weight_now = mean, weight
            out_means.append(mean)
            out_weights.append(weight)
    out_means[-1], out_weights[-1] = mean_now, weight_now
    return out_means, out_weights
