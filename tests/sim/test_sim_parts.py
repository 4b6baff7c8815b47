"""The simulator's parts on their own: per-node clocks, the bursty loss model, new flags."""

from __future__ import annotations

import math
import random

import pytest

from hearsay.resp.replies import ErrorReply
from hearsay.sim.checkers import reply_problem
from hearsay.sim.cli import build_parser, config_from_args, main
from hearsay.sim.clock import BASE_UNIX_MS, NodeClock
from hearsay.sim.config import BurstLossSpec, ClockStepSpec, CrashSpec, SimConfig, SkewSpec
from hearsay.sim.network import Network
from hearsay.sim.workload import MAY_FAIL
from hearsay.sim.world import run

pytestmark = pytest.mark.sim


@pytest.mark.parametrize(("offset_ms", "drift_ppm"), [(0, 0), (250, 0), (-400, 3000), (7, -2500)])
def test_a_timer_fires_at_the_first_moment_the_node_clock_reaches_it(
    offset_ms: int, drift_ppm: int
) -> None:
    clock = NodeClock(offset_ms, drift_ppm)
    for sim_now in (0, 1, 999, 123_456):
        for ahead in (0, 1, 17, 5000):
            target = clock.now_ms(sim_now) + ahead
            at = clock.sim_at(target, sim_now)
            assert at >= sim_now
            assert clock.now_ms(at) >= target
            assert at == sim_now or clock.now_ms(at - 1) < target


def test_a_step_back_moves_the_clock_back_and_delays_its_timers() -> None:
    clock = NodeClock()
    assert clock.now_ms(1000) == BASE_UNIX_MS + 1000
    due = clock.now_ms(1500)
    clock.step(-2000)
    assert clock.now_ms(1000) == BASE_UNIX_MS - 1000
    assert clock.sim_at(due, 1000) == 3500


def test_bursty_loss_loses_in_runs_uniform_loss_does_not() -> None:
    def runs(config: SimConfig) -> tuple[float, float]:
        net = Network(config, random.Random(1))
        lost = [net.lost(0, 1) for _ in range(20_000)]
        starts = sum(1 for a, b in zip([False, *lost], lost, strict=False) if b and not a)
        return sum(lost) / len(lost), sum(lost) / max(1, starts)

    uniform_rate, uniform_run = runs(SimConfig(nodes=2, loss=0.2))
    burst_rate, burst_run = runs(SimConfig(nodes=2, burst_loss=BurstLossSpec(0.05, 0.2)))
    assert 0.17 < uniform_rate < 0.23 and uniform_run < 1.5
    # stationary bad share 0.05 / 0.25 = 0.2, mean burst 1 / 0.2 = 5 datagrams
    assert 0.15 < burst_rate < 0.25 and burst_run > 3


def test_new_flags_parse_and_reproduce() -> None:
    argv = ["--burst-loss=0.05:0.3", "--skew=250:100", "--clock-step=2:1:-1500", "--loss=0.01"]
    config = config_from_args(build_parser().parse_args(argv))
    assert config.burst_loss == BurstLossSpec(0.05, 0.3, 1.0)
    assert config.skew == SkewSpec(250, 100)
    assert config.clock_steps == (ClockStepSpec(2, 1, -1500),)
    again = config_from_args(build_parser().parse_args(config.command().split()[2:]))
    assert again == config


def test_converges_under_bursty_loss_skew_and_a_clock_stepping_back() -> None:
    config = SimConfig(
        nodes=12,
        seed=21,
        loss=0.02,
        burst_loss=BurstLossSpec(0.05, 0.25),
        skew=SkewSpec(500, 2000),
        clock_steps=(ClockStepSpec(2, 2, -3000),),
        duration_s=6,
        writes=40,
    )
    result, _ = run(config, wall_limit_s=math.inf)
    assert result["converged"], f"{result.get('problems')}\n{config.command()}"
    assert result["monotone_violations"] == 0


def test_every_new_fault_replays_exactly_from_its_seed() -> None:
    config = SimConfig(
        nodes=10,
        seed=13,
        loss=0.02,
        burst_loss=BurstLossSpec(0.05, 0.25),
        skew=SkewSpec(400, 1500),
        clock_steps=(ClockStepSpec(2, 2, -2500),),
        crashes=(CrashSpec(3, 2, 1),),
        fsync="always",
        duration_s=5,
        writes=60,
    )
    first, _ = run(config, wall_limit_s=math.inf)
    second, _ = run(config, wall_limit_s=math.inf)
    first.pop("wall_seconds")
    second.pop("wall_seconds")
    assert first == second
    assert first["converged"], first["problems"]


def test_streams_pass_the_hello_check_as_in_the_runtime() -> None:
    """Datagrams so small that anti-entropy must stream: the receiving replica checks each
    stream's hello before its body, and the streams are taken."""
    config = SimConfig(
        nodes=6,
        seed=7,
        duration_s=8,
        writes=300,
        keys=40,
        crashes=(CrashSpec(4, 2, 2, wipe=True),),
        heal_s=30,
        membership=False,
        encrypt=True,
        node_config={"udp_payload_bytes_max": 256},
    )
    result, sim = run(config, wall_limit_s=math.inf)
    assert result["converged"], result["problems"]
    taken = 0
    for replica in sim.all_nodes:
        assert replica.node is not None
        taken += replica.node.stats.streams_in
    assert 0 < taken <= result["stream_messages"]


def test_bad_settings_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--node-config", "udp_payload_bytes_max=10"]) == 2
    assert "udp_payload_bytes_max" in capsys.readouterr().err
    assert main(["--node-config", "no_such_setting=1"]) == 2
    assert main(["--plant", "no-such-bug"]) == 2


def test_an_error_reply_to_a_valid_command_is_a_problem() -> None:
    bug = ErrorReply("ERR internal error in pfadd: KeyError: 3")
    assert reply_problem(2, [b"PFADD", b"hll:0", b"m"], bug, MAY_FAIL, 5) is not None
    assert reply_problem(2, [b"PFADD", b"hll:0", b"m"], 1, MAY_FAIL, 5) is None
    exists = ErrorReply("CMS: key already exists")
    assert reply_problem(2, [b"CMS.INITBYDIM", b"cms:2", b"64", b"4"], exists, MAY_FAIL, 5) is None
