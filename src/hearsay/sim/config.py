"""What one simulation run is: the fault specs and :class:`SimConfig`, and the command line
that reproduces it.

Why this module exists: a run is fully described by its config and seed, so the config is a
plain frozen value that the CLI parses, the tests build, and every report prints back as a
``hearsay sim`` command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    """Nodes split in two sides from ``start_s`` to ``end_s``; ``fraction`` on side A."""

    start_s: float
    end_s: float
    fraction: float = 0.5
    one_way: bool = False
    """Only A -> B is cut (B still reaches A)."""

    @classmethod
    def parse(cls, text: str) -> PartitionSpec:
        parts = text.split(":")
        if not 2 <= len(parts) <= 4:
            raise ValueError("partition: START_S:END_S[:FRACTION[:oneway]]")
        fraction = float(parts[2]) if len(parts) > 2 else 0.5
        one_way = len(parts) > 3 and parts[3] in ("oneway", "one-way", "1")
        spec = cls(float(parts[0]), float(parts[1]), fraction, one_way)
        if not 0 <= spec.start_s < spec.end_s or not 0 < fraction < 1:
            raise ValueError(f"invalid partition {text!r}")
        return spec

    def text(self) -> str:
        return f"{self.start_s:g}:{self.end_s:g}:{self.fraction:g}" + (
            ":oneway" if self.one_way else ""
        )


@dataclass(frozen=True, slots=True)
class CrashSpec:
    """``count`` random live nodes crash at ``at_s``; back after ``down_s`` (None: never)."""

    at_s: float
    count: int = 1
    down_s: float | None = None
    wipe: bool = False
    """The restarted node lost its disk (comes back empty)."""

    @classmethod
    def parse(cls, text: str) -> CrashSpec:
        parts = text.split(":")
        if not 1 <= len(parts) <= 4:
            raise ValueError("crash: AT_S[:COUNT[:DOWN_S[:wipe]]]")
        count = int(parts[1]) if len(parts) > 1 else 1
        down = float(parts[2]) if len(parts) > 2 and parts[2] not in ("", "never") else None
        wipe = len(parts) > 3 and parts[3] == "wipe"
        spec = cls(float(parts[0]), count, down, wipe)
        if spec.at_s < 0 or count < 1 or (down is not None and down <= 0):
            raise ValueError(f"invalid crash {text!r}")
        return spec

    def text(self) -> str:
        down = "never" if self.down_s is None else f"{self.down_s:g}"
        return f"{self.at_s:g}:{self.count}:{down}" + (":wipe" if self.wipe else "")


@dataclass(frozen=True, slots=True)
class BurstLossSpec:
    """Bursty loss, a two-state Gilbert-Elliott model per directed link.

    Each datagram on a link first moves the link's state: good -> bad with probability
    ``enter``, bad -> good with ``leave``; then it is lost with ``SimConfig.loss`` in the good
    state and ``bad_loss`` in the bad one. The mean burst is ``1 / leave`` datagrams.
    """

    enter: float
    leave: float
    bad_loss: float = 1.0

    @classmethod
    def parse(cls, text: str) -> BurstLossSpec:
        parts = text.split(":")
        if not 2 <= len(parts) <= 3:
            raise ValueError("burst-loss: ENTER:LEAVE[:BAD_LOSS]")
        spec = cls(float(parts[0]), float(parts[1]), float(parts[2]) if len(parts) > 2 else 1.0)
        if not (0 < spec.enter <= 1 and 0 < spec.leave <= 1 and 0 <= spec.bad_loss <= 1):
            raise ValueError(f"invalid burst loss {text!r}")
        return spec

    def text(self) -> str:
        return f"{self.enter:g}:{self.leave:g}:{self.bad_loss:g}"


@dataclass(frozen=True, slots=True)
class SkewSpec:
    """Per-node clocks: each node gets a fixed offset in ``[-max_offset_ms, max_offset_ms]``
    and a drift in ``[-max_drift_ppm, max_drift_ppm]`` (parts per million of elapsed time)."""

    max_offset_ms: int
    max_drift_ppm: int = 0

    @classmethod
    def parse(cls, text: str) -> SkewSpec:
        parts = text.split(":")
        if not 1 <= len(parts) <= 2:
            raise ValueError("skew: MAX_OFFSET_MS[:MAX_DRIFT_PPM]")
        spec = cls(int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)
        if spec.max_offset_ms < 0 or not 0 <= spec.max_drift_ppm < 1_000_000:
            raise ValueError(f"invalid skew {text!r}")
        return spec

    def text(self) -> str:
        return f"{self.max_offset_ms}:{self.max_drift_ppm}"


@dataclass(frozen=True, slots=True)
class ClockStepSpec:
    """At ``at_s``, ``count`` random live nodes' clocks jump by ``step_ms`` (negative: back)."""

    at_s: float
    count: int = 1
    step_ms: int = -1000

    @classmethod
    def parse(cls, text: str) -> ClockStepSpec:
        parts = text.split(":")
        if not 1 <= len(parts) <= 3:
            raise ValueError("clock-step: AT_S[:COUNT[:STEP_MS]]")
        spec = cls(
            float(parts[0]),
            int(parts[1]) if len(parts) > 1 else 1,
            int(parts[2]) if len(parts) > 2 else -1000,
        )
        if spec.at_s < 0 or spec.count < 1:
            raise ValueError(f"invalid clock step {text!r}")
        return spec

    def text(self) -> str:
        return f"{self.at_s:g}:{self.count}:{self.step_ms}"


@dataclass(frozen=True, slots=True)
class PlantedBugs:
    """Bugs planted on purpose (test hooks) to show that the checkers catch them.

    The checkers are never told: they judge the run by the config's documented bounds.
    """

    store_drops_every: int = 0
    """Every node's store claims to sync, but silently drops every n-th key write."""
    clock_error_ms: int = 0
    """Node 0's clock is off by this much beyond ``--skew`` (which the checkers trust)."""
    del_not_gossiped: bool = False
    """DEL is applied to the replica's keyspace around its write funnel: never gossiped (nor
    stored), as a replica that forgot to hand the delete on would do."""

    @classmethod
    def parse(cls, texts: list[str]) -> PlantedBugs:
        fields: dict[str, int | bool] = {}
        for text in texts:
            name, _, value = text.partition("=")
            if name == "store-drops-every":
                fields["store_drops_every"] = int(value)
            elif name == "clock-error-ms":
                fields["clock_error_ms"] = int(value)
            elif name == "del-not-gossiped":
                fields["del_not_gossiped"] = True
            else:
                raise ValueError(f"unknown planted bug {text!r}")
        return cls(**fields)  # type: ignore[arg-type]

    def texts(self) -> list[str]:
        out = []
        if self.store_drops_every:
            out.append(f"store-drops-every={self.store_drops_every}")
        if self.clock_error_ms:
            out.append(f"clock-error-ms={self.clock_error_ms}")
        if self.del_not_gossiped:
            out.append("del-not-gossiped")
        return out


@dataclass(frozen=True, slots=True)
class SimConfig:
    nodes: int = 16
    seed: int = 1
    loss: float = 0.0
    duplicate: float = 0.0
    delay_min_ms: int = 1
    delay_max_ms: int = 10
    preset: str = "lan"
    duration_s: float = 20.0
    heal_s: float = 60.0
    writes: int = 100
    keys: int = 16
    partitions: tuple[PartitionSpec, ...] = ()
    crashes: tuple[CrashSpec, ...] = ()
    stall_fraction: float = 0.0
    """Fraction of nodes that stall now and then during the safety phase."""
    stall_max_ms: int = 1000
    clog_fraction: float = 0.0
    """Fraction of nodes whose links are clogged (extra delay) for a while."""
    clog_ms: int = 500
    membership: bool = True
    encrypt: bool = False
    check_monotone: bool = True
    stream_bytes_per_s: int = 50_000_000
    warmup_s: float = 0.0
    """Convictions of running nodes before this are counted apart (cluster formation)."""
    node_config: dict[str, Any] = field(default_factory=dict)
    burst_loss: BurstLossSpec | None = None
    """Bursty loss beside (in the good state, instead of) the uniform ``loss``."""
    skew: SkewSpec | None = None
    clock_steps: tuple[ClockStepSpec, ...] = ()
    fsync: str = "everysec"
    """The nodes' ``--fsync`` policy: what a crash may lose (see :mod:`hearsay.sim.store`)."""
    planted: PlantedBugs = PlantedBugs()
    windowed: bool = True
    """A fifth of the clients also write windowed keys with a short window (off with
    ``--no-windowed``: how runs of seeds from before issue 17 replay as they did)."""
    flushall: bool = True
    """Now and then a client runs FLUSHALL (off with ``--no-flushall``: how runs of seeds from
    before it replay as they did). A key a node ends by its old TTL before it hears of the
    FLUSHALL is a case the reference cannot model: see :func:`.checkers.expired_unaware`."""
    lifecycle: bool = True
    """Now and then a client deletes or expires a t-digest, cuckoo, Top-K or windowed key, and
    a third add further items to one Bloom filter so it grows sub-filters (off with
    ``--no-lifecycle``: how runs of seeds from before it replay as they did)."""

    def command(self) -> str:
        """The command line that reproduces this run."""
        args = [
            "hearsay",
            "sim",
            f"--nodes={self.nodes}",
            f"--seed={self.seed}",
            f"--loss={self.loss:g}",
            f"--duplicate={self.duplicate:g}",
            f"--delay-ms={self.delay_min_ms}:{self.delay_max_ms}",
            f"--preset={self.preset}",
            f"--duration-s={self.duration_s:g}",
            f"--heal-s={self.heal_s:g}",
            f"--writes={self.writes}",
            f"--keys={self.keys}",
        ]
        args += [f"--partition={p.text()}" for p in self.partitions]
        args += [f"--crash={c.text()}" for c in self.crashes]
        if self.stall_fraction:
            args.append(f"--stall={self.stall_fraction:g}:{self.stall_max_ms}")
        if self.clog_fraction:
            args.append(f"--clog={self.clog_fraction:g}:{self.clog_ms}")
        if self.burst_loss is not None:
            args.append(f"--burst-loss={self.burst_loss.text()}")
        if self.skew is not None:
            args.append(f"--skew={self.skew.text()}")
        args += [f"--clock-step={s.text()}" for s in self.clock_steps]
        if self.fsync != "everysec":
            args.append(f"--fsync={self.fsync}")
        args += [f"--plant={t}" for t in self.planted.texts()]
        if not self.membership:
            args.append("--no-membership")
        if self.encrypt:
            args.append("--encrypt")
        if not self.check_monotone:
            args.append("--no-check-monotone")
        if self.warmup_s:
            args.append(f"--warmup-s={self.warmup_s:g}")
        if not self.windowed:
            args.append("--no-windowed")
        if not self.flushall:
            args.append("--no-flushall")
        if not self.lifecycle:
            args.append("--no-lifecycle")
        args += [f"--node-config={k}={v}" for k, v in sorted(self.node_config.items())]
        return " ".join(shlex.quote(a) for a in args)
