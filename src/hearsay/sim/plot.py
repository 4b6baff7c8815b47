"""The spread plot: for every write, the fraction of live nodes holding it over time.

Why this module exists: a picture of the rumour's S-curve and its tail shows at once whether
the tail (digests, anti-entropy) or the push is the bottleneck. matplotlib is optional (the
``plot`` extra), so it is imported only here.
"""

from __future__ import annotations


def plot_spread(series: list[tuple[list[int], list[float]]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for times, fractions in series:
        ax.step([0, *times], [0.0, *fractions], where="post", alpha=0.25, linewidth=0.8)
    ax.set_xlabel("ms since the write")
    ax.set_ylabel("fraction of live nodes holding it")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
