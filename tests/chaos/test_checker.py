"""The chaos checker itself, on made-up ledgers and states (fast; part of ``make test``).

A checker that never complains would let every chaos run pass; these cases show it catches
each kind of wrong final state.
"""

from __future__ import annotations

from hearsay.sketch.hll_math import members_index_rank
from tests.chaos.workload import SKETCHES, Ledger, Reading, violations


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


def _sketch_ledger() -> Ledger:
    """Client 0's sketch writes: two items each added once (one acknowledged), a t-digest
    of 3, 5 and 9 (3 and 5 acknowledged), 4 + 2 sent to a count-min item (4 acknowledged)."""
    ledger = Ledger(0)
    for family in ("bloom", "cuckoo", "topk"):
        ledger.sketches[family].sent.update({b"i1": 1, b"i2": 1})
        ledger.sketches[family].acked.update({b"i1": 1})
    digest = ledger.sketches["tdigest"]
    digest.sent.update({b"3": 1, b"5": 1, b"9": 1})
    digest.acked.update({b"3": 1, b"5": 1})
    ledger.sketches["cms"].sent.update({b"i1": 6})
    ledger.sketches["cms"].acked.update({b"i1": 4})
    return ledger


def _sketch_state(**changes: Reading) -> dict[bytes, dict[int, int] | int | Reading]:
    """A state that keeps exactly what :func:`_sketch_ledger` acknowledged, with ``changes``
    (by family) in place of its readings."""
    readings = {
        "bloom": Reading({b"i1": 1}),
        "cuckoo": Reading({b"i1": 1}, {"inserted": 1, "deleted": 0}),
        "tdigest": Reading({}, {"observations": 2, "min": 3.0, "max": 5.0}),
        "cms": Reading({b"i1": 4}, {"count": 4}),
        "topk": Reading({b"i1": 1, b"i2": 0}),
    }
    readings.update(changes)
    return {SKETCHES[family].prefix + b":0": reading for family, reading in readings.items()}


def test_sketches_with_every_acknowledged_write_pass() -> None:
    assert violations([_sketch_ledger()], _sketch_state()) == []
    most = _sketch_state(
        cuckoo=Reading({b"i1": 1}, {"inserted": 2, "deleted": 0}),
        tdigest=Reading({}, {"observations": 3, "min": 3.0, "max": 9.0}),
        cms=Reading({b"i1": 6}, {"count": 6}),
        topk=Reading({b"i1": 1, b"i2": 1}),
    )
    assert violations([_sketch_ledger()], most) == []


def test_a_lost_acknowledged_add_is_reported_in_every_family() -> None:
    lost = {
        "bloom": Reading({b"i1": 0}),
        "cuckoo": Reading({b"i1": 0}, {"inserted": 1, "deleted": 0}),
        "tdigest": Reading({}, {"observations": 1, "min": 3.0, "max": 3.0}),
        "cms": Reading({b"i1": 3}),
        "topk": Reading({b"i1": 0, b"i2": 0}),
    }
    for family, reading in lost.items():
        found = violations([_sketch_ledger()], _sketch_state(**{family: reading}))
        assert found, family
    # a missing key loses all of its acknowledged writes
    assert len(violations([_sketch_ledger()], {})) >= 6


def test_sketch_totals_outside_acked_and_sent_are_reported() -> None:
    cases = {
        "cuckoo": [
            Reading({b"i1": 1}, {"inserted": 0, "deleted": 0}),
            Reading({b"i1": 1}, {"inserted": 3, "deleted": 0}),
            Reading({b"i1": 1}, {"inserted": 1, "deleted": 1}),
        ],
        "tdigest": [
            Reading({}, {"observations": 4, "min": 3.0, "max": 9.0}),
            Reading({}, {"observations": 2, "min": 2.0, "max": 5.0}),
            Reading({}, {"observations": 2, "min": 3.0, "max": 10.0}),
            Reading({}, {"observations": 2, "min": 4.0, "max": 5.0}),
        ],
        "cms": [
            Reading({b"i1": 7}, {"count": 6}),
            Reading({b"i1": 4}, {"count": 3}),
            Reading({b"i1": 4}, {"count": 7}),
        ],
        "topk": [Reading({b"i1": 2, b"i2": 0}), Reading({b"i1": 1, b"i2": 2})],
    }
    for family, readings in cases.items():
        for reading in readings:
            assert violations([_sketch_ledger()], _sketch_state(**{family: reading})), reading


def test_forgetting_the_acknowledged_keeps_only_the_sent_bounds() -> None:
    ledger = _sketch_ledger()
    ledger.forget_acked()
    empty = _sketch_state(
        bloom=Reading(),
        cuckoo=Reading({}, {"inserted": 0, "deleted": 0}),
        tdigest=Reading({}, {"observations": 0}),
        cms=Reading({b"i1": 0}, {"count": 0}),
        topk=Reading({b"i1": 0, b"i2": 0}),
    )
    assert violations([ledger], empty) == []


def test_cuckoo_deletes_are_held_to_acked_and_sent() -> None:
    """Client 0 added i1 and i2 (acknowledged), then deleted i1 (acknowledged) and sent a
    delete of i2 that was never answered."""
    ledger = Ledger(0)
    cuckoo = ledger.sketches["cuckoo"]
    cuckoo.sent.update({b"i1": 1, b"i2": 1})
    cuckoo.acked.update({b"i1": 1, b"i2": 1})
    cuckoo.removed_sent.update({b"i1": 1, b"i2": 1})
    cuckoo.removed_acked.update({b"i1": 1})
    key = SKETCHES["cuckoo"].prefix + b":0"
    for inserted, deleted in ((0, 2), (1, 1)):  # the unanswered delete applied, or not
        state = {key: Reading({}, {"inserted": inserted, "deleted": deleted})}
        assert violations([ledger], state) == [], (inserted, deleted)
    for inserted, deleted in ((2, 0), (0, 3), (2, 1), (1, 0)):
        state = {key: Reading({}, {"inserted": inserted, "deleted": deleted})}
        assert violations([ledger], state), (inserted, deleted)
    # an add that was never deleted must still be found
    cuckoo.acked[b"i3"] = cuckoo.sent[b"i3"] = 1
    state = {key: Reading({b"i3": 0}, {"inserted": 2, "deleted": 1})}
    assert violations([ledger], state) == [f"{key!r}: lost the acknowledged add of b'i3'"]
    # a delete that did not find an acknowledged add is reported as it happened
    ledger.anomalies.append("a CF.DEL answered 0")
    state = {key: Reading({b"i3": 1}, {"inserted": 2, "deleted": 1})}
    assert violations([ledger], state) == ["a CF.DEL answered 0"]


def test_hll_registers_are_held_between_acked_and_sent_members() -> None:
    """Each register between the highest rank the acknowledged members give it and the
    highest the sent ones do (members m1..m40, the odd ones acknowledged)."""
    ledger = Ledger(0)
    hll = ledger.sketches["hll"]
    members = [b"m%d" % i for i in range(1, 41)]
    hll.sent.update(members)
    hll.acked.update(members[::2])
    key = SKETCHES["hll"].prefix + b":0"

    def registers(of: list[bytes]) -> dict[int, int]:
        indices, ranks = members_index_rank(of)
        out: dict[int, int] = {}
        for index, rank in zip(indices.tolist(), ranks.tolist(), strict=True):
            out[index] = max(out.get(index, 0), rank)
        return out

    for held in (members[::2], members):
        assert violations([ledger], {key: Reading(registers=registers(held))}) == [], held
    lost = registers(members[::2])
    index = min(lost)
    lost[index] -= 1
    found = violations([ledger], {key: Reading(registers=lost)})
    assert found == [f"{key!r} register {index} = {lost[index]}: lost an acknowledged PFADD"]
    invented = registers(members)
    invented[max(invented)] = 60
    assert violations([ledger], {key: Reading(registers=invented)}) != []
    stranger = {**registers(members), 16383 if 16383 not in invented else 0: 1}
    assert violations([ledger], {key: Reading(registers=stranger)}) != []
