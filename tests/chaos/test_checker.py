"""The chaos checker itself, on made-up ledgers and states (fast; part of ``make test``).

A checker that never complains would let every chaos run pass; these cases show it catches
each kind of wrong final state.
"""

from __future__ import annotations

from tests.chaos.workload import Ledger, violations


def _ledger() -> Ledger:
    ledger = Ledger(0)
    ledger.vmax_sent = {1: 10, 2: 20}
    ledger.vmax_acked = {1: 10, 2: 15}
    ledger.incr_sent, ledger.incr_acked = 12, 7
    return ledger


def test_a_state_with_every_acknowledged_write_and_nothing_else_passes() -> None:
    assert violations([_ledger()], {b"v:0": {1: 10, 2: 20}, b"c:0": 9}) == []
    assert violations([_ledger()], {b"v:0": {1: 10, 2: 15}, b"c:0": 7}) == []


def test_a_lost_acknowledged_vmax_is_reported() -> None:
    found = violations([_ledger()], {b"v:0": {1: 10, 2: 14}, b"c:0": 7})
    assert found == ["b'v:0'[2] = 14: lost the acknowledged VMAX to 15"]


def test_a_missing_key_loses_its_acknowledged_writes() -> None:
    found = violations([_ledger()], {})
    assert len(found) == 3  # two indices and the counter


def test_a_value_nobody_sent_is_reported() -> None:
    found = violations([_ledger()], {b"v:0": {1: 11, 2: 15, 3: 1}, b"c:0": 7})
    assert found == ["b'v:0'[1] = 11: never written", "b'v:0'[3] = 1: never written"]


def test_a_counter_outside_acked_and_sent_is_reported() -> None:
    assert violations([_ledger()], {b"v:0": {1: 10, 2: 15}, b"c:0": 6}) != []
    assert violations([_ledger()], {b"v:0": {1: 10, 2: 15}, b"c:0": 13}) != []


def test_a_key_nobody_wrote_is_reported() -> None:
    found = violations([_ledger()], {b"v:0": {1: 10, 2: 15}, b"c:0": 7, b"zombie": -1})
    assert found == ["b'zombie': a key nobody wrote"]
