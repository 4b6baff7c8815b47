"""A full or failing disk under a real ``hearsay serve``: no acknowledged write is ever lost.

Each test mounts its own small file system on a directory under the test's temporary
directory (a tmpfs of a few MiB, or an ext4 image on a loop device for the read-only case),
puts the node's data directory there, and breaks it while clients write. The checker is the
same everywhere: every write the node acknowledged is in the final state after a restart, and
no write it refused before applying (``MISCONF ... cannot write``) is. Mounting needs root (CI
runs as root); the tests skip, saying so, when not root. Everything mounted is unmounted by
path in a ``finally``; every node is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis

from hearsay.base.errors import StorageError
from hearsay.persist.store import SqliteStore
from tests.support.nodes import NodeProcess, poll_until, start_node
from tests.support.raw_resp import command, read_replies
from tests.support.scrape import scrape, value
from tests.support.together import clients, coalesced, send_together

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root"),
]

KEY_PAD = "k" * 900  # long keys fill a small disk in a few hundred writes
WRITES_MAX = 20_000
REFUSED_TO_SEE = 20  # refusals in a row that show the node stopped acknowledging
RECOVERY_TIMEOUT_S = 30.0


@contextlib.contextmanager
def tmpfs(where: Path, size_bytes: int) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(where)], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def key(number: int) -> str:
    return f"{KEY_PAD}:{number}"


@dataclass
class Ledger:
    """What the node answered: acknowledged (key -> value), refused before applying, and
    not durable (applied but not acknowledged: may or may not survive)."""

    acked: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    not_durable: list[str] = field(default_factory=list)

    def record(self, name: str, amount: int, reply: object) -> None:
        if isinstance(reply, int) and not isinstance(reply, bool):
            assert reply == amount, f"INCRBY {name} {amount} replied {reply}"
            self.acked[name] = amount
        elif isinstance(reply, redis.exceptions.ResponseError):
            text = str(reply).removeprefix("MISCONF ")
            if text.startswith("write not durable"):
                self.not_durable.append(name)
            else:
                assert text.startswith("hearsay cannot write to its data directory"), text
                self.refused.append(name)
        else:
            raise AssertionError(f"unexpected reply {reply!r} to INCRBY {name}")

    def check(self, client: redis.Redis) -> None:
        """Every acknowledged write is there with its value; nothing refused is."""
        names = list(self.acked) + self.refused
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
        values = pipe.execute(raise_on_error=True) if names else []
        found = dict(zip(names, values, strict=True))
        lost = [n for n in self.acked if found[n] is None or int(found[n]) != self.acked[n]]
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[0][-12:]}"
        applied = [n for n in self.refused if found[n] is not None]
        assert not applied, f"{len(applied)} refused writes were applied"


def write_until_refused(client: redis.Redis, ledger: Ledger, first: int, batch: int) -> int:
    """INCRBY fresh keys, ``batch`` per pipeline, until the node refuses REFUSED_TO_SEE in a
    row; returns the next key number. Every command must get a reply (no dropped connection)."""
    number = first
    streak = 0
    while number < first + WRITES_MAX:  # bounded
        pipe = client.pipeline(transaction=False)
        names = [key(number + i) for i in range(batch)]
        for offset, name in enumerate(names):
            pipe.incrby(name, number + offset + 1)
        replies = pipe.execute(raise_on_error=False)
        assert len(replies) == batch
        for offset, (name, reply) in enumerate(zip(names, replies, strict=True)):
            ledger.record(name, number + offset + 1, reply)
            streak = streak + 1 if ledger.refused and ledger.refused[-1] == name else 0
        number += batch
        if streak >= REFUSED_TO_SEE:
            return number
    raise AssertionError(f"the disk never filled in {WRITES_MAX} writes")


def health(node: NodeProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{node.http}/health", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_text(node: NodeProcess, path: str) -> str:
    with urllib.request.urlopen(f"http://{node.http}{path}", timeout=10) as reply:
        return str(reply.read().decode())


def http_json(node: NodeProcess, path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(http_text(node, path))
    return loaded


def fill(mount: Path, leave_bytes: int) -> Path:
    """Take all but ``leave_bytes`` of the file system's free space with a filler file."""
    filler = mount / "filler"
    stats = os.statvfs(mount)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as out:
        out.truncate(0)
        remaining = max(0, free - leave_bytes)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:  # bounded by the free space
            out.write(chunk[: min(remaining, len(chunk))])
            remaining -= min(remaining, len(chunk))
    return filler


def info_persistence(client: redis.Redis) -> dict[str, object]:
    return dict(client.info("persistence"))


@pytest.mark.parametrize("policy", ["everysec", "always"])
def test_disk_full_refuses_writes_loses_nothing_and_recovers(tmp_path: Path, policy: str) -> None:
    mount = tmp_path / "mnt"
    node: NodeProcess | None = None
    with tmpfs(mount, 16 * 1024 * 1024):
        try:
            node = start_node(mount / "data", "--fsync", policy)
            client = node.client(decode_responses=True)
            ledger = Ledger()
            filler = fill(mount, 1024 * 1024)
            following = write_until_refused(client, ledger, 0, batch=20)
            assert ledger.acked, "no write was acknowledged before the disk filled"
            assert ledger.refused, "the node never refused a write"
            # Read-only for writes: reported, and reads still work.
            status, text = health(node)
            assert status == 503 and "read-only" in text and "full" in text, (status, text)
            persistence = info_persistence(client)
            assert persistence["storage_status"] == "read-only"
            assert persistence["aof_last_write_status"] == "err"
            storage = http_json(node, "/status")["storage"]
            assert storage["state"] == "read-only" and "full" in storage["cause"], storage
            assert value(scrape(node), "hearsay_storage_read_only") == 1
            ledger.check(client)
            # The disk recovers: so does the node, by itself.
            filler.unlink()
            poll_until(lambda: health(node)[0] == 200, RECOVERY_TIMEOUT_S, 0.1, "recovery")
            assert info_persistence(client)["storage_status"] == "ok"
            after = key(following)
            assert client.incrby(after, 7) == 7
            ledger.acked[after] = 7
            assert node.stop() == 0
            node = start_node(mount / "data", "--fsync", policy)
            ledger.check(node.client(decode_responses=True))
            output = b"\n".join(node.output)
            assert b"Traceback" not in output
        finally:
            if node is not None:
                node.kill()


COALESCED_CLIENTS = 40
COALESCED_KEYS = 4  # a round's keys: each gets COALESCED_CLIENTS / COALESCED_KEYS increments
COALESCED_ROUNDS_MAX = 2_000


def test_a_full_disk_under_coalesced_commands_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Single INCRBYs of 40 clients that arrive together (coalesced: ``_Coalescer``), ten to
    each of four fresh keys a round, while the disk fills. Each client adds its own bit to its
    key, so the value says exactly which increments were applied: every acknowledged one is
    there, none refused before applying is, and the node coalesced while it refused."""
    mount = tmp_path / "mnt"
    node: NodeProcess | None = None
    with tmpfs(mount, 16 * 1024 * 1024):
        try:
            node = start_node(mount / "data", "--fsync", "everysec")
            bits: dict[str, dict[str, list[int]]] = {}  # key -> outcome -> bits
            filler = fill(mount, 1024 * 1024)
            before = coalesced(node)
            refused_rounds = 0
            with clients(node, COALESCED_CLIENTS) as socks:
                for round_number in range(COALESCED_ROUNDS_MAX):  # bounded
                    names = [
                        key(round_number * COALESCED_KEYS + i % COALESCED_KEYS)
                        for i in range(COALESCED_CLIENTS)
                    ]
                    amounts = [1 << (i // COALESCED_KEYS) for i in range(COALESCED_CLIENTS)]
                    requests = [
                        command("INCRBY", name, str(amount))
                        for name, amount in zip(names, amounts, strict=True)
                    ]
                    send_together(node, socks, requests)
                    refused = 0
                    for sock, name, amount in zip(socks, names, amounts, strict=True):
                        reply = read_replies(sock, 1)[0]
                        if isinstance(reply, int):
                            outcome = "acked"
                        else:
                            assert isinstance(reply, hiredis.ReplyError), reply
                            text = str(reply).removeprefix("MISCONF ")
                            outcome = "maybe" if text.startswith("write not durable") else "refused"
                            assert outcome == "maybe" or text.startswith(
                                "hearsay cannot write to its data directory"
                            ), text
                            refused += outcome == "refused"
                        bits.setdefault(name, {}).setdefault(outcome, []).append(amount)
                    refused_rounds = refused_rounds + 1 if refused == COALESCED_CLIENTS else 0
                    if refused_rounds >= 3:
                        break
                else:
                    raise AssertionError("the disk never filled")
            assert coalesced(node) - before >= COALESCED_CLIENTS, "nothing was coalesced"
            assert any("acked" in seen for seen in bits.values()), "nothing acknowledged"

            def check(client: redis.Redis) -> None:
                names = list(bits)
                values = client.mget(names)
                for name, value in zip(names, values, strict=True):
                    held = int(value) if value is not None else 0
                    seen = bits[name]
                    lost = [b for b in seen.get("acked", []) if not held & b]
                    applied = [b for b in seen.get("refused", []) if held & b]
                    assert not lost, f"acknowledged increments lost on {name[-12:]}: {lost}"
                    assert not applied, f"refused increments applied on {name[-12:]}: {applied}"

            check(node.client(decode_responses=True))
            filler.unlink()
            poll_until(lambda: health(node)[0] == 200, RECOVERY_TIMEOUT_S, 0.1, "recovery")
            assert node.stop() == 0
            node = start_node(mount / "data", "--fsync", "everysec")
            check(node.client(decode_responses=True))
            assert b"Traceback" not in b"\n".join(node.output)
        finally:
            if node is not None:
                node.kill()


def test_a_rewrite_in_chunks_fits_a_disk_one_transaction_cannot(tmp_path: Path) -> None:
    """What a recovery after a full disk writes: 3,000 rows of 900-byte keys (~2.8 MB) on a
    10 MiB disk. In one transaction they commit into a WAL as big as the rows, and the
    checkpoint that would make them durable cannot grow the database beside it (the store
    would stay read-only); in chunks of 256 rows, the WAL cut back after each, all of them are
    stored and the WAL is left empty."""
    puts: dict[bytes, bytes | None] = {
        (KEY_PAD + f"{i:06d}").encode(): b"v" * 40 for i in range(3000)
    }
    with (
        tmpfs(tmp_path / "one", 10 * 1024 * 1024) as mount,
        SqliteStore(mount / "data") as store,
        pytest.raises(StorageError, match="full"),
    ):
        store.write_batch(puts, durable=True)
        store.checkpoint()
    with tmpfs(tmp_path / "chunks", 10 * 1024 * 1024) as mount:
        with SqliteStore(mount / "data") as store:
            store.write_in_chunks(puts, {}, rows_max=256)
            assert store.count() == len(puts)
            assert (mount / "data" / "hearsay.db-wal").stat().st_size == 0
        with SqliteStore(mount / "data") as store:
            assert store.count() == len(puts)
            assert store.get(next(iter(puts))) == b"v" * 40


def test_sigterm_while_the_disk_is_full_reports_what_was_not_saved(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    node: NodeProcess | None = None
    with tmpfs(mount, 16 * 1024 * 1024):
        try:
            node = start_node(mount / "data", "--fsync", "always")
            client = node.client(decode_responses=True)
            ledger = Ledger()
            fill(mount, 1024 * 1024)
            write_until_refused(client, ledger, 0, batch=20)
            assert ledger.not_durable, "no write was caught by the failure under always"
            assert node.stop() == 1, "a node that could not save everything must exit non-zero"
            assert node.process.stdout is not None
            rest = node.process.stdout.read()
            assert b"could not be saved" in rest, rest[-2000:]
            assert b"Traceback" not in rest, rest[-4000:]
            # Every acknowledged write was durable before the disk filled.
            (mount / "filler").unlink()
            node = start_node(mount / "data", "--fsync", "always")
            ledger.check(node.client(decode_responses=True))
        finally:
            if node is not None:
                node.kill()


@contextlib.contextmanager
def ext4_image(image: Path, where: Path, size_bytes: int) -> Iterator[Path]:
    """An ext4 file system in ``image`` mounted on ``where`` (loop device) that turns itself
    read-only on an error, as a failing disk makes it."""
    with image.open("wb") as out:
        out.truncate(size_bytes)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    where.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-o", "loop,errors=remount-ro", str(image), str(where)]
    subprocess.run(mount, check=True)
    try:
        yield where
    finally:
        if os.path.ismount(where):
            subprocess.run(["umount", str(where)], check=True)


def turn_read_only(mount: Path) -> None:
    """Make ext4 report an error: with errors=remount-ro the kernel remounts it read-only
    under the node's open files (``mount -o remount,ro`` refuses while files are open for
    writing)."""
    source = subprocess.run(
        ["findmnt", "-no", "SOURCE", str(mount)], check=True, capture_output=True, text=True
    ).stdout.strip()
    trigger = Path("/sys/fs/ext4") / Path(source).name / "trigger_fs_error"
    trigger.write_text("hearsay test: turn read-only\n")
    poll_until(lambda: not _writable(mount), 10.0, 0.05, "the read-only remount")


def _writable(mount: Path) -> bool:
    try:
        (mount / "probe").write_bytes(b"x")
    except OSError as error:
        assert error.errno == errno.EROFS, error
        return False
    return True


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="needs mkfs.ext4 (e2fsprogs)")
@pytest.mark.parametrize("policy", ["everysec", "always"])
def test_read_only_file_system_refuses_writes_and_loses_nothing_acknowledged(
    tmp_path: Path, policy: str
) -> None:
    """Under always nothing acknowledged is lost. Under everysec the writes acknowledged after
    the last sync may be (a file system that never comes back is everysec's power cut), so
    the test waits for the node to report every earlier write synced before breaking it."""
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    node: NodeProcess | None = None
    with ext4_image(image, mount, 32 * 1024 * 1024):
        try:
            node = start_node(mount / "data", "--fsync", policy)
            client = node.client(decode_responses=True)
            ledger = Ledger()
            pipe = client.pipeline(transaction=False)
            for number in range(100):
                pipe.incrby(key(number), number + 1)
            for number, reply in enumerate(pipe.execute(raise_on_error=False)):
                ledger.record(key(number), number + 1, reply)
            assert len(ledger.acked) == 100
            poll_until(
                lambda: info_persistence(client)["storage_unsynced_writes"] == 0,
                15.0,
                0.05,
                "every acknowledged write to be synced",
            )
            synced = dict(ledger.acked)
            turn_read_only(mount)
            write_until_refused(client, ledger, 100, batch=20)
            status, text = health(node)
            assert status == 503 and "read-only" in text, (status, text)
            ledger.check(client)
            # It cannot recover while the file system stays read-only: stopping says so.
            assert node.stop() == 1
            assert node.process.stdout is not None
            rest = node.process.stdout.read()
            assert b"could not be saved" in rest and b"Traceback" not in rest, rest[-4000:]
            node = None
            subprocess.run(["umount", str(mount)], check=True)
            fsck = subprocess.run(["e2fsck", "-fy", str(image)], check=False, capture_output=True)
            assert fsck.returncode in (0, 1), fsck.stdout.decode(errors="replace")
            subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
            node = start_node(mount / "data", "--fsync", policy)
            if policy == "everysec":
                ledger.acked = synced
            ledger.check(node.client(decode_responses=True))
        finally:
            if node is not None:
                node.kill()
