"""Targets and the verdict on each: what every benchmark in bench/ shares.

A benchmark states each target as a figure, a comparison and a bound, prints them all as it
judges them, and exits 1 if any was missed (2 if it could not measure at all), so that
``make bench`` and CI can tell. A target that could not be measured counts as missed: a
benchmark that cannot say a target holds must not say it does.

``--target-scale`` exists to check the harness itself (tests/project/test_bench_harness.py): it
scales every bound by a factor in the direction of difficulty (``>=`` bounds multiplied, ``<=``
bounds divided), so 0 makes every target trivially met and a huge factor makes every target
with a non-zero bound missed. Figures printed under a scale other than 1 are not the project's
targets, and the output says so.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

EXIT_MET = 0
EXIT_MISSED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every benchmark takes."""
    parser.add_argument(
        "--target-scale",
        type=float,
        default=1.0,
        help="scale every target's difficulty (harness checks only: 0 = all met, 1e9 = missed)",
    )


def spread(values: Sequence[float]) -> str:
    """Median and range of a round-by-round series, as printed beside each figure."""
    if not values:
        return "no rounds"
    return (
        f"median {statistics.median(values):,.4g} (min {min(values):,.4g}, "
        f"max {max(values):,.4g}, {len(values)} rounds)"
    )


@dataclass
class Verdicts:
    """The targets one benchmark run judged, in the order it judged them."""

    scale: float = 1.0
    lines: list[tuple[str, bool]] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Verdicts:
        verdicts = cls(scale=args.target_scale)
        if verdicts.scale != 1.0:
            print(f"(targets scaled by {verdicts.scale:g}: a harness check, not the targets)")
        return verdicts

    def _bound(self, op: str, bound: float) -> float:
        if op == ">=":
            return bound * self.scale
        if self.scale == 0:
            return math.inf
        return bound / self.scale

    def check(  # noqa: PLR0917
        self, name: str, figure: float | None, op: str, bound: float, unit: str = "", note: str = ""
    ) -> bool:
        """Judge ``figure op bound`` and print one line; None (not measured) is a miss."""
        if op not in (">=", "<="):
            raise ValueError(f"unknown comparison {op!r}")
        scaled = self._bound(op, bound)
        if figure is None or math.isnan(figure):
            met = False
            shown = "not measured"
        else:
            met = figure >= scaled if op == ">=" else figure <= scaled
            shown = f"{figure:,.4g}{unit}"
        verdict = "met" if met else "MISSED"
        extra = f"  ({note})" if note else ""
        print(f"  {verdict:<6} {name}: {shown}, target {op} {scaled:,.4g}{unit}{extra}", flush=True)
        self.lines.append((name, met))
        return met

    @property
    def missed(self) -> list[str]:
        return [name for name, met in self.lines if not met]

    def finish(self, benchmark: str) -> int:
        """Print the summary line and return the exit status."""
        if not self.lines:
            print(f"{benchmark}: no target was judged: MISSED")
            return EXIT_MISSED
        if self.missed:
            print(f"{benchmark}: MISSED {len(self.missed)} of {len(self.lines)} targets:")
            for name in self.missed:
                print(f"  - {name}")
            return EXIT_MISSED
        print(f"{benchmark}: all {len(self.lines)} targets met")
        return EXIT_MET
