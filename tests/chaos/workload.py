"""Clients that write through RESP and remember what was acknowledged; the checker.

Why this module exists: "no acknowledged write is lost" is only testable when every write has
a value the final state can be checked against. The writes here are chosen so that the final
state is exactly predictable from what was acknowledged and what was merely sent:

- ``VMAX v:<client> index value``: each client writes increasing values to indices of its own
  key. In the final state, every index must hold at least the largest acknowledged value (an
  acknowledged write is kept) and at most the largest value sent to it (nothing is invented);
  an index nobody wrote must not exist.
- ``INCRBY c:<client> n``: the final counter lies between the sum of acknowledged increments
  and the sum of all increments sent (an unanswered one may or may not have been applied).
- No key other than these may exist.

A VMAX whose connection failed is retried (bounded) on a new connection, as a client library
would: a retry that is acknowledged counts as acknowledged, so a node that answers retries of
writes it never made durable is caught. INCRBY is not idempotent and is never retried.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.chaos.lab import Lab, LabNode, enter_netns, in_netns

VMAX_INDICES = 64
RETRIES = 3
SOCKET_TIMEOUT_S = 2.0


def connect(node: LabNode) -> redis.Redis:
    """A redis-py client without its own retries (the workload decides what a retry is)."""
    host, port = node.resp
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass
class Ledger:
    """What one client sent and what was acknowledged."""

    client: int
    vmax_sent: dict[int, int] = field(default_factory=dict)  # index -> largest value sent
    vmax_acked: dict[int, int] = field(default_factory=dict)  # index -> largest acked
    incr_sent: int = 0
    incr_acked: int = 0
    replies: Counter[str] = field(default_factory=Counter)

    @property
    def vmax_key(self) -> bytes:
        return b"v:%d" % self.client

    @property
    def counter_key(self) -> bytes:
        return b"c:%d" % self.client


class Writer(threading.Thread):
    """One client: writes to one node from the lab's client namespace until told to stop."""

    def __init__(
        self, lab: Lab, node: LabNode, ledger: Ledger, *, seed: int, ops_max: int, pause_s: float
    ) -> None:
        super().__init__(daemon=True, name=f"chaos-writer-{ledger.client}")
        self.lab, self.node, self.ledger = lab, node, ledger
        self.rng = random.Random(seed)
        self.ops_max, self.pause_s = ops_max, pause_s
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            enter_netns(self.lab.client_ns)
            client = connect(self.node)
            for op in range(1, self.ops_max + 1):
                if self.stopping.is_set():
                    break
                if self.rng.random() < 0.75:
                    client = self._vmax(client, self.rng.randrange(VMAX_INDICES), op)
                else:
                    client = self._incrby(client, self.rng.randint(1, 9))
                self.stopping.wait(self.pause_s)
        except BaseException as error:  # surfaced by the test, never swallowed
            self.error = error

    def _vmax(self, client: redis.Redis, index: int, value: int) -> redis.Redis:
        ledger = self.ledger
        ledger.vmax_sent[index] = max(ledger.vmax_sent.get(index, 0), value)
        for _ in range(RETRIES):
            try:
                client.execute_command("VMAX", ledger.vmax_key, index, value)
            except redis.ResponseError as error:
                ledger.replies[f"error {str(error).split()[0]}"] += 1
                return client
            except (redis.ConnectionError, redis.TimeoutError) as error:
                ledger.replies[type(error).__name__] += 1
                client.close()
                client = connect(self.node)
                self.stopping.wait(0.2)
                continue
            ledger.replies["ok"] += 1
            ledger.vmax_acked[index] = max(ledger.vmax_acked.get(index, 0), value)
            return client
        return client

    def _incrby(self, client: redis.Redis, amount: int) -> redis.Redis:
        ledger = self.ledger
        ledger.incr_sent += amount
        try:
            client.execute_command("INCRBY", ledger.counter_key, amount)
        except redis.ResponseError as error:
            ledger.replies[f"error {str(error).split()[0]}"] += 1
            return client
        except (redis.ConnectionError, redis.TimeoutError) as error:
            ledger.replies[type(error).__name__] += 1
            client.close()
            return connect(self.node)
        ledger.replies["ok"] += 1
        ledger.incr_acked += amount
        return client


class Workload:
    """Several writers spread over the nodes; start, stop, and the ledgers they kept."""

    def __init__(
        self,
        lab: Lab,
        seed: int,
        *,
        clients: int = 3,
        ops_max: int = 400,
        pause_s: float = 0.02,
        nodes: list[int] | None = None,
        first_client: int = 0,
    ) -> None:
        """``first_client`` numbers this workload's clients (and so its keys) after another's,
        so that several workloads (before, during, after a fault) are checked together."""
        targets = nodes if nodes is not None else [node.index for node in lab.nodes]
        self.ledgers = [Ledger(first_client + i) for i in range(clients)]
        self.writers = [
            Writer(
                lab,
                lab.nodes[targets[i % len(targets)]],
                ledger,
                seed=seed * 1000 + ledger.client,
                ops_max=ops_max,
                pause_s=pause_s,
            )
            for i, ledger in enumerate(self.ledgers)
        ]

    def start(self) -> None:
        for writer in self.writers:
            writer.start()

    def stop(self) -> None:
        for writer in self.writers:
            writer.stopping.set()
        for writer in self.writers:
            writer.join(60)
            assert not writer.is_alive(), f"{writer.name} did not stop"
            if writer.error is not None:
                raise writer.error

    def stop_after_all(self, timeout_s: float = 120.0) -> None:
        """Let every writer finish its ``ops_max`` writes, then stop (bounded)."""
        deadline = time.monotonic() + timeout_s
        for writer in self.writers:
            writer.join(max(0.0, deadline - time.monotonic()))
        self.stop()

    def acked(self) -> int:
        return sum(ledger.replies["ok"] for ledger in self.ledgers)

    def summary(self) -> str:
        total: Counter[str] = Counter()
        for ledger in self.ledgers:
            total.update(ledger.replies)
        return ", ".join(f"{name}: {count}" for name, count in sorted(total.items()))


# ----- the checker -------------------------------------------------------------------------


class ViolationError(AssertionError):
    """The final state lost an acknowledged write or holds something nobody wrote."""


def read_state(node: LabNode) -> dict[bytes, dict[int, int] | int]:
    """Every key of ``node``: a vector as {index: value}, a counter as its value."""
    client = connect(node)
    try:
        state: dict[bytes, dict[int, int] | int] = {}
        for key in client.scan_iter(count=1000):
            if key.startswith(b"v:"):
                flat = client.execute_command("VGET", key)
                state[key] = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
            elif key.startswith(b"c:"):
                state[key] = int(client.get(key) or 0)
            else:
                state[key] = -1  # a key nobody wrote: reported by violations()
        return state
    finally:
        client.close()


def violations(ledgers: list[Ledger], state: dict[bytes, dict[int, int] | int]) -> list[str]:
    """Everything in ``state`` that breaks "every acknowledged write, and nothing else"."""
    out: list[str] = []
    known = {ledger.vmax_key: ledger for ledger in ledgers}
    known.update({ledger.counter_key: ledger for ledger in ledgers})
    for key in state:
        if key not in known:
            out.append(f"{key!r}: a key nobody wrote")
    for ledger in ledgers:
        vector = state.get(ledger.vmax_key, {})
        assert isinstance(vector, dict)
        for index, acked in sorted(ledger.vmax_acked.items()):
            if vector.get(index, 0) < acked:
                out.append(
                    f"{ledger.vmax_key!r}[{index}] = {vector.get(index, 0)}: lost the "
                    f"acknowledged VMAX to {acked}"
                )
        for index, value in sorted(vector.items()):
            if value > ledger.vmax_sent.get(index, 0):
                out.append(f"{ledger.vmax_key!r}[{index}] = {value}: never written")
        counter = state.get(ledger.counter_key, 0)
        assert isinstance(counter, int)
        if counter < ledger.incr_acked:
            out.append(
                f"{ledger.counter_key!r} = {counter}: below the {ledger.incr_acked} acknowledged"
            )
        if counter > ledger.incr_sent:
            out.append(f"{ledger.counter_key!r} = {counter}: above the {ledger.incr_sent} sent")
    return out


def settle_and_check(
    lab: Lab, ledgers: list[Ledger], nodes: list[int] | None = None, timeout_s: float = 60.0
) -> None:
    """Poll (bounded) until every node holds the same state and it keeps every acknowledged
    write and nothing else; fail with what is wrong on each node otherwise."""
    indices = nodes if nodes is not None else [node.index for node in lab.nodes]
    deadline = time.monotonic() + timeout_s
    while True:
        states = {i: in_netns(lab.client_ns, lambda i=i: read_state(lab.nodes[i])) for i in indices}
        problems = {i: violations(ledgers, state) for i, state in states.items()}
        agree = all(state == states[indices[0]] for state in states.values())
        if agree and not any(problems.values()):
            return
        if time.monotonic() > deadline:
            report = [f"after {timeout_s} s the nodes {'agree' if agree else 'disagree'}"]
            for i, found in problems.items():
                report.append(f"node {i}: {len(found)} violations")
                report.extend(f"  {line}" for line in found[:10])
            raise ViolationError("\n".join(report))
        time.sleep(0.5)
