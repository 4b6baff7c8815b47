"""``hearsay demo``: a three-node cluster on loopback, a stream of page views, a crash.

Everything is real: three ``hearsay serve`` processes in a temporary directory with ports the
kernel picks, written to over RESP. The stream is a web site's traffic: each hit adds its
visitor to the page's HyperLogLog (unique visitors per page) and counts the page in one
count-min sketch (hits per page), each write sent to one node in turn. The demo waits (polling,
with a deadline) until every node answers the same, kills one node with SIGKILL, writes more
while it is down, restarts it on its data directory and waits until it has caught up; then it
prints the answers beside the true values, stops every node by its PID and removes the
directory.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from hearsay.admin.commands import members
from hearsay.admin.connection import AdminError, Exit, Target, send
from hearsay.admin.table import render, text

if TYPE_CHECKING:
    import redis

NODES: Final = 3
PAGES: Final = ("/", "/pricing", "/docs", "/blog", "/docs/install", "/about", "/careers")
VISITORS: Final = 4000
HITS: Final = 24_000
HITS_WHILE_DOWN: Final = 6000
"""Of ``HITS``, how many are written while the third node is down (to the other two)."""
WRITE_BATCH: Final = 200
"""Hits sent to one node in one pipelined round trip."""
CMS_KEY: Final = "hits"
CMS_WIDTH: Final = 2000
CMS_DEPTH: Final = 5
START_TIMEOUT_S: Final = 20.0
CONVERGE_TIMEOUT_S: Final = 30.0
POLL_INTERVAL_S: Final = 0.05
STOP_TIMEOUT_S: Final = 10.0
READY_PREFIX: Final = b"hearsay ready "


def visitors_key(page: str) -> str:
    return f"visitors:{page}"


@dataclass
class DemoNode:
    """One ``hearsay serve`` process and the addresses its ready line gave."""

    name: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    resp: Target
    gossip: str

    def client(self) -> redis.Redis:
        return self.resp.client()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Sends ``sig`` to the node's PID and waits (SIGKILL if it does not stop in time)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def start_node(name: str, data_dir: Path, join: str | None) -> DemoNode:
    """Starts a node on loopback (every port picked by the kernel) and waits, bounded, for
    its ready line."""
    args = [
        sys.executable, "-m", "hearsay.cli", "serve", "--host", "127.0.0.1", "--port", "0",
        "--gossip-port", "0", "--http-port", "0", "--data-dir", str(data_dir / "data"),
        "--preset", "local", "--node-name", name, "--log-level", "warning",
        *(["--join", join] if join else []),
    ]  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "log").open("ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT_S
    buffered = b""
    try:
        while time.monotonic() < deadline and b"\n" not in buffered:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffered += chunk
    finally:
        selector.close()
    line = buffered.split(b"\n", 1)[0]
    if not line.startswith(READY_PREFIX):
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)
        said = (data_dir / "log").read_text(errors="replace").strip()
        raise AdminError(f"node {name} did not start: {said or 'no ready line'}", Exit.REFUSED)
    fields = dict(part.split("=", 1) for part in line[len(READY_PREFIX) :].decode().split())
    return DemoNode(name, data_dir, process, Target(*_address(fields["resp"])), fields["gossip"])


@dataclass
class Traffic:
    """The stream of hits, and the truth to compare the cluster's answers with."""

    rng: random.Random
    visitors: dict[str, set[str]] = field(default_factory=lambda: {p: set() for p in PAGES})
    hits: Counter[str] = field(default_factory=Counter)

    def next_hits(self, count: int) -> list[tuple[str, str]]:
        """``count`` (page, visitor) hits: popular pages first (Zipf-like), any visitor."""
        weights = [1 / rank for rank in range(1, len(PAGES) + 1)]
        pages = self.rng.choices(PAGES, weights, k=count)
        out = [(page, f"visitor-{self.rng.randrange(VISITORS):05}") for page in pages]
        for page, visitor in out:
            self.visitors[page].add(visitor)
            self.hits[page] += 1
        return out


def write(nodes: Sequence[DemoNode], traffic: Traffic, count: int) -> None:
    """Sends ``count`` hits, each batch to the next node in turn: as an ingest pipeline would,
    a batch is one PFADD per page (its visitors) and one CMS.INCRBY (the hits per page)."""
    for done in range(0, count, WRITE_BATCH):
        node = nodes[(done // WRITE_BATCH) % len(nodes)]
        batch = traffic.next_hits(min(WRITE_BATCH, count - done))
        by_page: dict[str, set[str]] = {}
        for page, visitor in batch:
            by_page.setdefault(page, set()).add(visitor)
        hits = Counter(page for page, _ in batch)
        with node.client() as client:
            pipe = client.pipeline(transaction=False)
            for page, visitors in by_page.items():
                send(pipe, "PFADD", visitors_key(page), *sorted(visitors))
            send(pipe, "CMS.INCRBY", CMS_KEY, *[x for page, n in hits.items() for x in (page, n)])
            pipe.execute(raise_on_error=True)


def answers(node: DemoNode) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """What ``node`` says: unique visitors and hits, per page."""
    with node.client() as client:
        pipe = client.pipeline(transaction=False)
        for page in PAGES:
            send(pipe, "PFCOUNT", visitors_key(page))
        send(pipe, "CMS.QUERY", CMS_KEY, *PAGES)
        *uniques, hits = pipe.execute()
    return tuple(int(u) for u in uniques), tuple(int(h) for h in hits)


def wait_until(check: Callable[[], bool], what: str) -> float:
    """Polls ``check`` until it holds; the seconds it took (an error after the deadline)."""
    started = time.monotonic()
    deadline = started + CONVERGE_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise AdminError(
                f"demo: {what} did not happen within {CONVERGE_TIMEOUT_S} s", Exit.REFUSED
            )
        time.sleep(POLL_INTERVAL_S)
    return time.monotonic() - started


def converged(nodes: Sequence[DemoNode], traffic: Traffic) -> Callable[[], bool]:
    """Every node counts every hit, and all answer the same."""

    def check() -> bool:
        seen = [answers(node) for node in nodes]
        counted = all(n >= traffic.hits[p] for p, n in zip(PAGES, seen[0][1], strict=True))
        return counted and all(s == seen[0] for s in seen)

    return check


def members_agree(nodes: Sequence[DemoNode]) -> Callable[[], bool]:
    """Every node sees every node alive, each in the same generation: the restarted node's
    data can catch up (it pulls) before the others' membership has taken it back, and the
    table the demo prints must not show it failed."""

    def check() -> bool:
        views = []
        for node in nodes:
            with node.client() as client:
                rows = send(client, "HEARSAY.MEMBERS")
            views.append({text(row[0]): (text(row[2]), int(row[4])) for row in rows})
        alive = all(
            len(view) == len(nodes) and all(state == "alive" for state, _ in view.values())
            for view in views
        )
        return alive and all(view == views[0] for view in views)

    return check


def report(nodes: Sequence[DemoNode], traffic: Traffic) -> str:
    """The answers of every node beside the true values, as a table."""
    seen = [answers(node) for node in nodes]
    rows = []
    for i, page in enumerate(PAGES):
        true_uniques = len(traffic.visitors[page])
        estimate = seen[0][0][i]
        error = (estimate - true_uniques) / true_uniques if true_uniques else 0.0
        rows.append(
            [
                page,
                f"{true_uniques:,}",
                "/".join(f"{s[0][i]:,}" for s in seen),
                f"{error:+.1%}",
                f"{traffic.hits[page]:,}",
                "/".join(f"{s[1][i]:,}" for s in seen),
            ]
        )
    header = ["PAGE", "UNIQUE (TRUE)", "PFCOUNT (EACH NODE)", "ERROR", "HITS (TRUE)", "CMS"]
    return render(header, rows)


def run(out: TextIO, seed: int = 1) -> None:
    """The whole demo; every node is stopped and the directory removed, whatever happens."""
    traffic = Traffic(random.Random(seed))
    started = time.monotonic()
    nodes: list[DemoNode] = []
    with tempfile.TemporaryDirectory(prefix="hearsay-demo-") as root:
        say = _sayer(out, started)
        try:
            for n in range(NODES):
                join = nodes[0].gossip if nodes else None
                nodes.append(start_node(f"node{n + 1}", Path(root) / f"node{n + 1}", join))
                node = nodes[-1]
                say(f"started {node.name}: RESP {node.resp.address} (pid {node.process.pid})")
            with nodes[0].client() as client:
                send(client, "CMS.INITBYDIM", CMS_KEY, CMS_WIDTH, CMS_DEPTH)
            took = wait_until(
                lambda: all(_has(n, CMS_KEY) for n in nodes), "the sketch reaching every node"
            )
            shape = f"count-min {CMS_WIDTH}x{CMS_DEPTH}"
            say(f"created {CMS_KEY!r} ({shape}); every node had it after {took:.2f} s")
            write(nodes, traffic, HITS - HITS_WHILE_DOWN)
            say(f"wrote {HITS - HITS_WHILE_DOWN:,} hits, spread over the three nodes")
            took = wait_until(converged(nodes, traffic), "convergence")
            say(f"every node answers the same after {took:.2f} s")
            victim = nodes[2]
            victim.stop(signal.SIGKILL)
            say(f"killed {victim.name} (SIGKILL, pid {victim.process.pid})")
            write(nodes[:2], traffic, HITS_WHILE_DOWN)
            say(f"wrote {HITS_WHILE_DOWN:,} more hits to the two nodes left")
            nodes[2] = start_node(victim.name, victim.data_dir, nodes[0].gossip)
            say(f"restarted {victim.name} on its data directory (pid {nodes[2].process.pid})")
            took = wait_until(converged(nodes, traffic), f"{victim.name} catching up")
            took += wait_until(members_agree(nodes), f"every node seeing {victim.name} back")
            say(f"{victim.name} caught up after {took:.2f} s; the answers:")
            out.write("\n" + report(nodes, traffic) + "\n\n")
            table = StringIO()
            members(nodes[0].resp, as_json=False, out=table)
            out.write(table.getvalue() + "\n")
        finally:
            for node in nodes:
                node.stop()
    say(f"stopped every node and removed {root}; {time.monotonic() - started:.1f} s in all")


def _has(node: DemoNode, key: str) -> bool:
    with node.client() as client:
        return bool(client.exists(key))


def _sayer(out: TextIO, started: float) -> Callable[[str], None]:
    def say(text: str) -> None:
        out.write(f"[{time.monotonic() - started:5.1f} s] {text}\n")
        out.flush()

    return say
