"""Types of the C extension ``_tdigest.c`` (a t-digest's greedy merge of its centroids);
:func:`hearsay.sketch.tdigest.compress` documents the bounds, the tests' reference is
``tests/support/tdigest_reference.py``."""

import numpy as np
import numpy.typing as npt

def merge_greedy(
    means: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    middle: float,
    tail: float,
    total: float,
    out_means: npt.NDArray[np.float64],
    out_weights: npt.NDArray[np.float64],
    /,
) -> int:
    """Centroids sorted by mean (total weight ``total``) merged greedily, each within
    ``max(1, total * min(middle, tail * q))``, into the out arrays (at least as long as the
    input): how many centroids were written. TypeError for buffers that are not float64."""
