"""The parts of joining, without a node: addresses as operators write them, the retry delays,
the resolver's answer for gossip's socket family, a join task's attempts and log lines, the
peer snapshot file, and the keyring-mismatch report."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from hearsay.base.errors import HearsayError
from hearsay.protocol.membership import Address
from hearsay.runtime import joiner as joiner_module
from hearsay.runtime.addresses import parse_address
from hearsay.runtime.joiner import (
    JOIN_RETRY_FIRST_S,
    JOIN_RETRY_MAX_S,
    Joiner,
    ResolveError,
    resolve_for,
    retry_delay_s,
)
from hearsay.runtime.keyring import MISMATCH_LOG_INTERVAL_S, KeyringMismatches
from hearsay.runtime.peer_snapshot import (
    PEERS_KEPT_MAX,
    Snapshot,
    next_peers,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)


def test_addresses_are_ip_literals_host_names_or_bracketed_ipv6() -> None:
    assert parse_address("localhost:7946") == ("localhost", 7946)
    assert parse_address("seed-1.example.:80") == ("seed-1.example.", 80)
    assert parse_address("[::1]:7946") == ("::1", 7946)
    assert parse_address("10.0.0.1:1") == ("10.0.0.1", 1)
    for bad in ("::1:7946", "[10.0.0.1]:1", "bad host:1", "a..b:1", "-a:1", "x" * 64 + ":1"):
        with pytest.raises(HearsayError):
            parse_address(bad)


def test_retry_delays_double_with_jitter_up_to_a_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 40):
        step_s = min(JOIN_RETRY_MAX_S, JOIN_RETRY_FIRST_S * 2 ** (attempt - 1))
        delays = [retry_delay_s(attempt, rng) for _ in range(50)]
        assert all(step_s / 2 <= delay <= step_s for delay in delays)
        assert len(set(delays)) > 1  # jittered, from the injected Random
    assert retry_delay_s(3, random.Random(1)) == retry_delay_s(3, random.Random(1))


def test_names_resolve_to_the_gossip_sockets_family() -> None:
    async def run() -> None:
        assert await resolve_for(socket.AF_INET, "localhost", 5) == [("127.0.0.1", 5)]
        assert ("::ffff:127.0.0.1", 5) in await resolve_for(socket.AF_INET6, "localhost", 5)
        assert await resolve_for(socket.AF_INET, "::1", 5) == [("::1", 5)]  # a literal as is
        with pytest.raises(ResolveError, match="does not resolve"):
            await resolve_for(socket.AF_INET, "nosuchhost.invalid", 1)

    asyncio.run(run())


def test_a_lookup_the_resolver_has_not_answered_never_holds_up_the_loops_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop cancels a join whose lookup hangs (an unanswered DNS query): the event loop
    ends at once, without waiting for the resolver's thread (the loop's own resolver pool is
    joined at shutdown: a node waited for it)."""
    release = threading.Event()
    entered = threading.Event()

    def hanging(*_args: object, **_kwargs: object) -> list[object]:
        entered.set()
        release.wait(30.0)  # bounded: released below
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)

    async def run() -> None:
        lookup = asyncio.ensure_future(resolve_for(socket.AF_INET, "hangs.invalid", 1))
        for _ in range(500):  # bounded: until the lookup thread is in getaddrinfo
            if entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert entered.is_set()
        lookup.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lookup

    try:
        started = time.monotonic()
        asyncio.run(run())
        assert time.monotonic() - started < 5.0  # the lookup still hangs: not waited for
    finally:
        release.set()


def test_a_stop_as_the_lookup_fails_ends_the_join(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup's answer (a failure) and the stop's cancel land in the same loop turn: the
    cancel must win, or the join logs a failure, sleeps and retries while the stop waits
    for it (a node took over 20 s to stop after HEARSAY.JOIN of a name that does not
    resolve)."""

    async def run() -> None:
        lookup: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        monkeypatch.setattr(joiner_module, "_getaddrinfo", lambda host, port: lookup)

        async def resolve(host: str, port: int) -> list[Address]:
            return await resolve_for(socket.AF_INET, host, port)

        joiner = Joiner(resolve, lambda seeds: None, lambda: False, random.Random(1))
        joiner.join([("name.invalid", 1)], "name.invalid:1")
        for _ in range(100):  # bounded: until the join waits on the lookup
            await asyncio.sleep(0)
        assert joiner.attempts == 1
        lookup.set_exception(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
        async with asyncio.timeout(5.0):
            await joiner.stop()  # (run here, not as a task: it cancels before the join wakes)
        assert joiner.failures == 0  # the failure was never taken: the join ended there

    asyncio.run(run())


def test_a_join_retries_logs_once_per_reason_and_ends_when_a_member_is_live(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(joiner_module, "JOIN_RETRY_FIRST_S", 0.002)
    answers: list[list[Address] | str] = ["down", "down", "down", "other", [("10.0.0.9", 1)]]
    seeds: list[list[Address]] = []

    async def resolve(host: str, port: int) -> list[Address]:
        answer = answers.pop(0)
        if isinstance(answer, str):
            raise ResolveError(f"does not resolve ({answer})")
        return answer

    async def run() -> Joiner:
        joiner = Joiner(resolve, seeds.append, lambda: bool(seeds), random.Random(3))
        joiner.join([("seed.example", 1)], "seed.example:1")
        joiner.join([("seed.example", 1)], "seed.example:1")  # under way already: one task
        assert joiner.joining() == 1
        for _ in range(1000):
            if not joiner.joining():
                break
            await asyncio.sleep(0.005)
        return joiner

    with caplog.at_level(logging.WARNING, logger="hearsay.runtime.joiner"):
        joiner = asyncio.run(run())
    assert (joiner.attempts, joiner.failures, joiner.resolve_failures) == (5, 4, 4)
    assert seeds == [[("10.0.0.9", 1)]]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines  # "down" once (not three times), then "other"
    assert lines[0].startswith("join seed.example:1 failed: does not resolve (down); next retry")
    assert "(other)" in lines[1]


def test_a_join_gives_up_after_its_attempts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(joiner_module, "JOIN_RETRY_FIRST_S", 0.002)
    monkeypatch.setattr(joiner_module, "JOIN_ATTEMPTS_MAX", 3)

    async def resolve(host: str, port: int) -> list[Address]:
        return [(host, port)]

    async def run() -> Joiner:
        joiner = Joiner(resolve, lambda seeds: None, lambda: False, random.Random(3))
        joiner.join([("10.0.0.1", 1)], "10.0.0.1:1")
        for _ in range(1000):
            if not joiner.joining():
                break
            await asyncio.sleep(0.005)
        return joiner

    with caplog.at_level(logging.WARNING, logger="hearsay.runtime.joiner"):
        joiner = asyncio.run(run())
    assert (joiner.attempts, joiner.failures, joiner.joining()) == (3, 3, 0)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "no member answered at 10.0.0.1:1" in lines[0]
    assert lines[1].endswith("giving up after 3 attempts")


def test_the_peer_snapshot_round_trips_and_a_damaged_one_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert read_snapshot(tmp_path) == Snapshot()
    snapshot = Snapshot((("127.0.0.1", 7946), ("::1", 7947)), left=True)
    assert write_snapshot(tmp_path, snapshot)
    assert read_snapshot(tmp_path) == snapshot
    assert json.loads(snapshot_path(tmp_path).read_text())["peers"][1] == "[::1]:7947"
    for damaged in ("{", '{"peers": ["nohost"], "left": false}', '{"peers": [], "left": 1}', "[]"):
        snapshot_path(tmp_path).write_text(damaged)
        assert read_snapshot(tmp_path) == Snapshot()
    assert sum("damaged" in record.getMessage() for record in caplog.records) == 4
    assert not write_snapshot(tmp_path / "missing", snapshot)


def test_remembered_peers_stay_while_live_and_are_capped() -> None:
    live = [("10.0.0.1", port) for port in range(100)]
    kept = next_peers((), live, live)
    assert kept == tuple(live[:PEERS_KEPT_MAX])
    reordered = list(reversed(live))
    assert next_peers(kept, set(reordered), reordered) == kept  # no churn, no rewrite
    gone = kept[0]
    smaller = [peer for peer in live if peer != gone]
    after = next_peers(kept, set(smaller), smaller)
    assert gone not in after and after[: PEERS_KEPT_MAX - 1] == kept[1:]
    assert len(after) == PEERS_KEPT_MAX
    assert next_peers(kept, set(), []) == kept  # nobody live: keep what may come back


def test_a_keyring_mismatch_is_counted_every_time_and_logged_once_per_peer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mismatches = KeyringMismatches(has_keyring=True)
    with caplog.at_level(logging.WARNING, logger="hearsay.runtime.keyring"):
        for now_s in (0.0, 1.0, 2.0):
            mismatches.note(("10.0.0.1", 7946), "decrypt-failed", now_s)
        mismatches.note(("10.0.0.1", 7946), "stale", 3.0)  # not a keyring matter
        mismatches.note(("::1", 7946), "unauthenticated", 4.0)
        mismatches.note(("10.0.0.1", 7946), "decrypt-failed", MISMATCH_LOG_INTERVAL_S + 1)
    assert mismatches.count == 5
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("keyring mismatch with peer 10.0.0.1:7946: no key of our keyring")
    assert lines[1].startswith("keyring mismatch with peer [::1]:7946: it sends plaintext")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hearsay.runtime.keyring"):
        KeyringMismatches(has_keyring=False).note(("10.0.0.2", 1), "unauthenticated", 0.0)
    assert "this node has no --keyring" in caplog.records[0].getMessage()
