"""A t-digest's greedy merge in Python: the statement ``_tdigest.merge_greedy`` (C) runs, step
for step, as :func:`hearsay.sketch.tdigest.compress` ran it before it moved to C. The tests hold
the C to it, double for double. And the reads as they walked the centroids before
:class:`hearsay.sketch.tdigest.Reads` searched their running sums: the tests hold its answers to
these, float for float."""

from __future__ import annotations

import math

from hearsay.sketch.tdigest import Reads
from hearsay.sketch.tdigest import _weighted_average as weighted_average


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


class WalkedReads(Reads):
    """:class:`Reads` reading between the outer centroids by walking them, sums added on the
    way (as the reads did before they searched sums made once)."""

    __slots__ = ()

    def _quantile_inside(self, index: float) -> float:
        means, weights = self.means, self.weights
        n = len(means)
        so_far = weights[0] / 2
        for i in range(n - 1):
            dw = (weights[i] + weights[i + 1]) / 2
            if so_far + dw > index:
                left_unit = 0.0
                if weights[i] == 1:
                    if index - so_far < 0.5:
                        return means[i]
                    left_unit = 0.5
                right_unit = 0.0
                if weights[i + 1] == 1:
                    if so_far + dw - index <= 0.5:
                        return means[i + 1]
                    right_unit = 0.5
                z1 = index - so_far - left_unit
                z2 = so_far + dw - index - right_unit
                return weighted_average(means[i], z2, means[i + 1], z1)
            so_far += dw
        z1 = index - self.total - weights[-1] / 2
        z2 = weights[-1] / 2 - z1
        return weighted_average(means[-1], z1, self.maximum, z2)

    def _cdf_inside(self, x: float) -> float:
        means, weights, total = self.means, self.weights, self.total
        n = len(means)
        so_far = 0.0
        i = 0
        while i < n - 1:
            if means[i] == x:
                dw = 0.0
                while i < n and means[i] == x:
                    dw += weights[i]
                    i += 1
                return (so_far + dw / 2) / total
            if means[i] <= x < means[i + 1]:
                if means[i + 1] - means[i] > 0:
                    left_excluded = right_excluded = 0.0
                    if weights[i] == 1:
                        if weights[i + 1] == 1:
                            return (so_far + 1) / total
                        left_excluded = 0.5
                    elif weights[i + 1] == 1:
                        right_excluded = 0.5
                    dw = (weights[i] + weights[i + 1]) / 2
                    base = so_far + weights[i] / 2 + left_excluded
                    step = (dw - left_excluded - right_excluded) * (x - means[i])
                    return (base + step / (means[i + 1] - means[i])) / total
                return (so_far + (weights[i] + weights[i + 1]) / 2) / total
            so_far += weights[i]
            i += 1
        if x == means[-1]:
            return 1 - 0.5 / total
        return 1.0
