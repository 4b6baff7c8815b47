"""``hearsay import`` and ``hearsay import-redis`` against a real node (and a real Redis).

The expected values come from outside the import: the items the test wrote into the file,
HyperLogLog's error bound, and a redis-server's own PFCOUNT of the keys that were copied.
"""

from __future__ import annotations

import io
import json
import math
import os
import pty
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hearsay.admin.importer import LINE_BYTES_MAX, item_of, read_lines
from hearsay.admin.progress import Progress, duration
from tests.support.admin_run import hearsay, ok
from tests.support.nodes import Cluster, NodeProcess

pytestmark = pytest.mark.integration

HLL_STANDARD_ERROR = 1.04 / math.sqrt(2**14)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    cluster = Cluster(tmp_path_factory.mktemp("import"))
    try:
        yield cluster.start("a")
    finally:
        cluster.close()


def _visits_file(path: Path, visitors: int, seed: int) -> tuple[list[str], list[int]]:
    """A CSV of ``time,visitor,page`` lines with bad lines among them: returns every visitor
    written (duplicates included) and the numbers of the bad lines."""
    rng = random.Random(seed)
    written: list[str] = []
    bad: list[int] = []
    with path.open("wb") as out:
        for number in range(1, visitors + 1):
            kind = rng.randrange(200)
            if kind == 0:
                out.write(b"\n")  # blank
                bad.append(number)
            elif kind == 1:
                out.write(b"1700000000\n")  # no second column
                bad.append(number)
            elif kind == 2:
                out.write(b"1700000000,," + b"x" * (LINE_BYTES_MAX + 10) + b"\r\n")  # too long
                bad.append(number)
            elif kind == 3:
                out.write(b"1700000000,,/docs\n")  # an empty visitor
                bad.append(number)
            else:
                visitor = f"visitor-{rng.randrange(visitors // 2)}"
                written.append(visitor)
                out.write(f"1700000000,{visitor},/page\r\n".encode())
    return written, bad


def test_import_hll_counts_bad_lines_and_estimates_within_hll_error(
    node: NodeProcess, tmp_path: Path
) -> None:
    path = tmp_path / "visits.csv"
    written, bad = _visits_file(path, 30_000, seed=7)
    done = hearsay("import", str(path), "--key", "uniques", "--type", "hll", "--column", "2",
                   "--json", "-p", str(node.resp_port))  # fmt: skip
    assert done.returncode == 0, done
    report = json.loads(done.stdout)
    assert report["lines"] == 30_000
    assert report["items"] == len(written)
    assert report["bad_lines"] == len(bad) > 0
    assert report["first_bad_lines"] == bad[:10]
    distinct = len(set(written))
    estimate = node.client().pfcount("uniques")
    assert report["estimate"] == estimate
    assert abs(estimate - distinct) <= 4 * HLL_STANDARD_ERROR * distinct, (estimate, distinct)
    # Not a terminal: progress comes as plain lines, without control characters.
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    assert "30,000 lines" in done.stderr


def test_import_bloom_has_no_false_negative(node: NodeProcess, tmp_path: Path) -> None:
    items = [f"url-{i}" for i in range(5000)]
    path = tmp_path / "urls"
    path.write_text("\n".join(items) + "\n")
    out = ok("import", str(path), "--key", "urls", "--type", "bloom", "--capacity", "10000",
             "-p", str(node.resp_port))  # fmt: skip
    assert out.startswith("imported 5,000 items from 5,000 lines into urls (bloom)")
    client = node.client()
    assert client.execute_command("BF.INFO", "urls", "CAPACITY") == [10000]
    for start in range(0, len(items), 1000):
        assert client.execute_command("BF.MEXISTS", "urls", *items[start : start + 1000]) == [
            1
        ] * len(items[start : start + 1000])


def test_import_cms_from_standard_input_counts_every_line(node: NodeProcess) -> None:
    rng = random.Random(3)
    pages = [rng.choice(["/", "/a", "/b", "/c"]) for _ in range(7000)]
    done = ok("import", "-", "--key", "hits", "--type", "cms", "--error-rate", "0.001", "--json",
              "-p", str(node.resp_port), stdin="\n".join(pages) + "\n")  # fmt: skip
    report = json.loads(done)
    assert report == report | {"lines": 7000, "items": 7000, "bad_lines": 0, "estimate": 7000}
    truth = Counter(pages)
    answered = node.client().execute_command("CMS.QUERY", "hits", *truth)
    assert answered == list(truth.values())  # 4 items in 2000 columns: no collision


def test_import_into_a_key_of_another_type_is_refused_before_writing(
    node: NodeProcess, tmp_path: Path
) -> None:
    node.client().incr("a-counter")
    path = tmp_path / "items"
    path.write_text("x\ny\n")
    done = hearsay("import", str(path), "--key", "a-counter", "--type", "bloom",
                   "-p", str(node.resp_port))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "hearsay: a-counter holds a string, not a bloom\n"
    assert node.client().get("a-counter") == b"1"


def test_import_of_a_missing_file_is_one_line(node: NodeProcess, tmp_path: Path) -> None:
    done = hearsay("import", str(tmp_path / "nope"), "--key", "k", "--type", "hll",
                   "-p", str(node.resp_port))  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"hearsay: cannot read {tmp_path / 'nope'}: No such file or directory\n"


def test_lines_and_columns() -> None:
    data = b"a,b\r\nc\n" + b"z" * (LINE_BYTES_MAX + 1) + b"\nlast"
    lines = list(read_lines(io.BytesIO(data)))
    assert lines == [b"a,b", b"c", None, b"last"]
    assert [item_of(line, 2, b",") for line in lines] == [b"b", None, None, None]
    assert [item_of(line, None, b",") for line in lines] == [b"a,b", b"c", None, b"last"]
    assert item_of(b"a\t \tc", 2, b"\t") is None  # a blank field is no item


def test_progress_on_a_terminal_and_in_a_pipe() -> None:
    now = [0.0]
    tty = io.StringIO()
    bar = Progress(tty, total_bytes=1000, clock=lambda: now[0], is_tty=True)
    now[0] = 10.0
    bar.update(250, 5000)
    assert tty.getvalue() == (
        "\r[########----------------------]  25%  5,000 lines  500 lines/s  ETA 0:30\x1b[K"
    )
    bar.close()
    assert tty.getvalue().endswith("\n")
    pipe = io.StringIO()
    plain = Progress(pipe, total_bytes=None, clock=lambda: now[0], is_tty=False)
    now[0] = 11.0
    plain.update(0, 10)  # within the interval: nothing
    assert pipe.getvalue() == ""
    now[0] = 20.0
    plain.update(0, 20_000)
    assert pipe.getvalue() == "20,000 lines  2,000 lines/s\n"
    assert duration(3725) == "1:02:05" and duration(7) == "0:07"


@pytest.mark.redis
def test_import_redis_copies_hlls_with_their_ttl(node: NodeProcess, redis_server: int) -> None:
    source = redis.Redis(host="127.0.0.1", port=redis_server)
    source.flushall()
    for i in range(30):
        source.pfadd(f"hll:{i}", *[f"m{j}" for j in range(i * 100)] or ["only"])
    source.pfadd("other:hll", "x")
    source.set("hll:plain", "not an hll")
    source.pexpire("hll:3", 600_000)
    url = f"redis://127.0.0.1:{redis_server}"
    report = json.loads(ok("import-redis", url, "--match", "hll:*", "--json",
                           "-p", str(node.resp_port)))  # fmt: skip
    assert report == {"scanned": 31, "copied": 30, "skipped_not_hll": 1}
    target = node.client()
    for i in range(30):
        assert target.pfcount(f"hll:{i}") == source.pfcount(f"hll:{i}")
        copied, original = target.get(f"hll:{i}"), source.get(f"hll:{i}")
        assert copied[:8] + copied[16:] == original[:8] + original[16:]  # (8..16: cached count)
    assert target.exists("other:hll", "hll:plain") == 0
    assert 0 < target.pttl("hll:3") <= 600_000
    assert target.pttl("hll:4") == -1
    # Copying again changes nothing (SET of an HLL is a union).
    again = ok("import-redis", url, "--match", "hll:*", "-p", str(node.resp_port))
    assert again.startswith(f"copied 30 HLL keys from {url}")
    assert target.pfcount("hll:29") == source.pfcount("hll:29")


def test_import_redis_refuses_a_url_that_is_not_redis(node: NodeProcess) -> None:
    done = hearsay("import-redis", "http://127.0.0.1:1", "-p", str(node.resp_port))
    assert done.returncode == 2
    assert (
        done.stderr == "hearsay: the source must be redis://HOST:PORT, not 'http://127.0.0.1:1'\n"
    )


def test_import_on_a_terminal_draws_a_bar_with_rate_and_eta(
    node: NodeProcess, tmp_path: Path
) -> None:
    """stderr is a real pseudo-terminal: the progress is one line redrawn in place."""
    path = tmp_path / "items"
    path.write_text("".join(f"item-{i}\n" for i in range(3000)))
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hearsay.cli", "import", str(path), "--key", "tty-hll",
             "--type", "hll", "-p", str(node.resp_port)],
            stdout=subprocess.PIPE, stderr=terminal, timeout=30, check=False,
        )  # fmt: skip
        os.close(terminal)
        drawn = b""
        while True:  # bounded: the child has exited, the terminal holds what it wrote
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: nothing more to read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0, done
    assert done.stdout.startswith(b"imported 3,000 items from 3,000 lines into tty-hll (hll)")
    bar = drawn.decode().replace("\r\n", "\n")  # the terminal turns a line feed into CR LF
    # A slow machine may draw the bar several times before the end: every drawing returns to
    # the start of the one line (no line feed but the last), the last one is the 100% bar.
    assert bar.startswith("\r") and bar.endswith("\n") and bar.count("\n") == 1, bar
    drawings = bar[1:].split("\r")
    assert all(d.startswith("[") and "%  " in d for d in drawings), bar
    final = drawings[-1]
    assert final.startswith("[##############################] 100%  3,000 lines  "), bar
    assert final.endswith(" lines/s  ETA 0:00\x1b[K\n"), bar
