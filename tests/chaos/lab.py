"""A private network of real ``hearsay serve`` nodes, each in a network namespace of its own.

Why: partitions, packet loss, a frozen or killed process and a full or read-only disk are what
an eventually consistent store must survive, and only real processes on a real network stack
show whether it does. Loopback cannot drop one peer's packets and not another's; namespaces
can, without touching the machine's own network.

Layout (everything created here, named ``hsc<pid>-...``, and deleted by name on close)::

    hsc<pid>-br   a bridge br0 (the "switch")
    hsc<pid>-n0   node 0: eth0 10.213.0.10/24 (veth into br0), lo; the node listens on eth0
    hsc<pid>-n1   node 1: 10.213.0.11 ...
    hsc<pid>-cl   clients: 10.213.0.100 (the test's threads enter it with setns)
    hsc<pid>-st   a stranger: 10.213.0.200, no member of the cluster, no key

The 10.213.0.0/24 addresses exist only inside these namespaces. Each node namespace has an
nftables table ``inet chaos`` whose input chain holds the current faults (loss, partitions);
healing flushes the chain. A node may have a small filesystem of its own as its data directory
(a tmpfs for disk full, ext4 on a loop device for a read-only turn), mounted before the node
starts and unmounted after it stopped.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), ``ip`` (iproute2), ``nft`` (nftables), ``nsenter``
and ``losetup`` (util-linux) and ``mkfs.ext4``/``e2fsck`` (e2fsprogs).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

SUBNET = "10.213.0"
CLIENT_IP = f"{SUBNET}.100"
STRANGER_IP = f"{SUBNET}.200"
RESP_PORT = 7379
GOSSIP_PORT = 7946
HTTP_PORT = 7380
START_TIMEOUT_S = 30.0
READY = re.compile(r"^hearsay ready resp=(\S+) gossip=(\S+) http=(\S+) node=(\S+)$", re.M)
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
CAPTURE_FRAMES_MAX = 200_000
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def missing_requirements() -> str | None:
    """Why the chaos suite cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the chaos suite needs root (network namespaces, nftables, tmpfs mounts)"
    for tool in ("ip", "nft", "mount", "nsenter", "losetup", "mkfs.ext4", "e2fsck"):
        if shutil.which(tool) is None:
            return f"the chaos suite needs {tool!r}: `make chaos` installs iproute2 and nftables"
    return None


def run(*command: str, check: bool = True, input_text: str | None = None) -> str:
    """Run a command (bounded in time), returning its stdout; raise with its stderr."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=30, check=False, input=input_text
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def enter_netns(name: str) -> None:
    """Move the calling thread (only) into network namespace ``name``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns into {name}: {os.strerror(code)}")
    finally:
        os.close(fd)


def in_netns(name: str, work: Callable[[], T], timeout_s: float = 120.0) -> T:
    """Run ``work`` on a thread inside namespace ``name`` and return what it returned."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            enter_netns(name)
            box["value"] = work()
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise AssertionError(f"work inside {name} did not finish within {timeout_s} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@dataclass
class LabNode:
    """One node: its namespace, address, data directory and (while running) its process."""

    index: int
    netns: str
    ip: str
    data_dir: Path
    log_path: Path
    extra_args: list[str]
    process: subprocess.Popen[bytes] | None = None
    disk: str = ""
    """"" (the test's own directory), "tmpfs" or "ext4" (a loop device of its own)."""
    disk_bytes: int = 0
    loop: str = ""
    starts: int = 0
    stopped: bool = False
    fill_path: Path | None = field(default=None)

    @property
    def resp(self) -> tuple[str, int]:
        return self.ip, RESP_PORT

    @property
    def gossip(self) -> str:
        return f"{self.ip}:{GOSSIP_PORT}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"node {self.index} is not running"
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Lab:
    """Namespaces, a bridge, nodes and faults; :meth:`close` removes everything it made."""

    def __init__(
        self,
        root: Path,
        nodes: int,
        *,
        disk: str = "",
        disk_bytes: int = 0,
        keyring: bool = True,
        insecure_gossip: bool = False,
    ) -> None:
        self.root = root
        # Gossip between the lab's nodes is encrypted by default, as it should be on any
        # network that is not loopback; keyring=False shows what a stranger can do without
        # (a node refuses that on a reachable address unless insecure_gossip names the risk).
        self.insecure_gossip = insecure_gossip
        self.keyring: Path | None = None
        if keyring:
            self.keyring = root / "keyring"
            root.mkdir(parents=True, exist_ok=True)
            self.keyring.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
        self.prefix = f"hsc{os.getpid()}"
        self.bridge_ns = f"{self.prefix}-br"
        self.client_ns = f"{self.prefix}-cl"
        self.stranger_ns = f"{self.prefix}-st"
        self.namespaces: list[str] = []
        self.mounts: list[Path] = []
        self.loops: list[str] = []
        self.nodes: list[LabNode] = []
        self._closed = False
        atexit.register(self.close)
        try:
            self._make_bridge()
            self._attach(self.client_ns, CLIENT_IP, "vcl")
            self._attach(self.stranger_ns, STRANGER_IP, "vst")
            for index in range(nodes):
                netns = f"{self.prefix}-n{index}"
                ip = f"{SUBNET}.{10 + index}"
                self._attach(netns, ip, f"vn{index}")
                run("ip", "netns", "exec", netns, "nft", "-f", "-", input_text=_NFT_TABLE)
                data_dir = root / f"n{index}"
                data_dir.mkdir(parents=True, exist_ok=True)
                node = LabNode(index, netns, ip, data_dir, root / f"n{index}.log", [])
                self.nodes.append(node)
                if disk:
                    self._make_disk(node, disk, disk_bytes)
        except BaseException:
            self.close()
            raise

    # ----- topology ------------------------------------------------------------------------

    def _add_netns(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def _make_bridge(self) -> None:
        self._add_netns(self.bridge_ns)
        run("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")

    def _attach(self, netns: str, ip: str, port_name: str) -> None:
        """A namespace with eth0 at ``ip``, cabled to the bridge by a veth pair."""
        self._add_netns(netns)
        br = self.bridge_ns
        run("ip", "-n", br, "link", "add", port_name, "type", "veth", "peer", "name", "eth0",
            "netns", netns)  # fmt: skip
        run("ip", "-n", br, "link", "set", port_name, "master", "br0", "up")
        run("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", netns, "link", "set", "eth0", "up")

    # ----- nodes ---------------------------------------------------------------------------

    def configure(self, index: int, *args: str) -> None:
        """Extra ``hearsay serve`` flags for node ``index`` (kept across restarts)."""
        self.nodes[index].extra_args = list(args)

    def start(self, index: int) -> LabNode:
        """Start node ``index`` in its namespace and wait (bounded) for its ready line."""
        node = self.nodes[index]
        assert node.process is None or node.process.poll() is not None, "already running"
        joins = [
            arg for other in self.nodes if other is not node for arg in ("--join", other.gossip)
        ]
        if self.keyring is not None:
            joins += ["--keyring", str(self.keyring)]
        elif self.insecure_gossip:
            joins += ["--insecure-gossip"]
        command = [
            "nsenter", f"--net=/run/netns/{node.netns}", "--",
            sys.executable, "-m", "hearsay.cli", "serve",
            "--host", node.ip, "--port", str(RESP_PORT), "--gossip-port", str(GOSSIP_PORT),
            "--http-port", str(HTTP_PORT), "--data-dir", str(node.data_dir),
            "--preset", "local", "--node-name", f"n{index}", *joins, *node.extra_args,
        ]  # fmt: skip
        offset = node.log_path.stat().st_size if node.log_path.exists() else 0
        with node.log_path.open("ab") as log:
            log.write(f"--- start {node.starts} ---\n".encode())
            log.flush()
            # nsenter joins the network namespace only (the mounts stay shared, so a tmpfs
            # remounted here is remounted for the node too) and execs in place: the PID is the
            # node's own.
            node.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        node.starts += 1
        node.stopped = False
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = node.log_path.read_bytes()[offset:].decode(errors="replace")
            if READY.search(text):
                return node
            if node.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill(index)
        raise AssertionError(f"node {index} did not print its ready line:\n{node.log_tail()}")

    def kill(self, index: int, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig`` to node ``index``'s PID and wait for it to exit (SIGKILL if stuck)."""
        node = self.nodes[index]
        if node.process is None:
            return None
        if node.process.poll() is None:
            if node.stopped:
                os.kill(node.process.pid, signal.SIGCONT)
                node.stopped = False
            os.kill(node.process.pid, sig)
        try:
            return node.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(node.process.pid, signal.SIGKILL)
            return node.process.wait(timeout=30)

    def pause(self, index: int) -> None:
        """SIGSTOP: the node keeps its sockets and answers nothing (a long pause, a frozen VM)."""
        os.kill(self.nodes[index].pid, signal.SIGSTOP)
        self.nodes[index].stopped = True

    def resume(self, index: int) -> None:
        os.kill(self.nodes[index].pid, signal.SIGCONT)
        self.nodes[index].stopped = False

    def running(self, index: int) -> bool:
        process = self.nodes[index].process
        return process is not None and process.poll() is None

    # ----- network faults ------------------------------------------------------------------

    def _rule(self, index: int, rule: str) -> None:
        run("ip", "netns", "exec", self.nodes[index].netns, "nft", "add", "rule", "inet", "chaos",
            "input", *rule.split())  # fmt: skip

    def loss(self, index: int, percent: int) -> None:
        """Drop ``percent`` % of the UDP packets node ``index`` receives from its peers."""
        self._rule(
            index,
            f"ip saddr != {CLIENT_IP} meta l4proto udp numgen random mod 100 < {percent} drop",
        )

    def partition(self, side: list[int]) -> None:
        """Cut ``side`` off from every other node, both ways (clients still reach everyone)."""
        others = [node.index for node in self.nodes if node.index not in side]
        for a in side:
            for b in others:
                self._rule(a, f"ip saddr {self.nodes[b].ip} drop")
                self._rule(b, f"ip saddr {self.nodes[a].ip} drop")

    def heal(self) -> None:
        """Remove every network fault."""
        for node in self.nodes:
            run(
                "ip", "netns", "exec", node.netns, "nft", "flush", "chain", "inet", "chaos", "input"
            )

    # ----- eavesdropping ---------------------------------------------------------------------

    def capture_gossip(self, index: int, stop: threading.Event) -> list[bytes]:
        """Record the gossip datagrams (UDP payloads to any gossip port) that pass node
        ``index``'s port of the bridge, both ways, until ``stop`` is set (bounded).

        What an eavesdropper on the network sees: with a keyring, sealed datagrams it cannot
        read but can send again.
        """

        def record() -> list[bytes]:
            seen: list[bytes] = []
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as raw:
                raw.bind((f"vn{index}", 0))
                raw.settimeout(0.1)
                for _ in range(CAPTURE_FRAMES_MAX):
                    if stop.is_set():
                        break
                    try:
                        frame = raw.recv(65_535)
                    except TimeoutError:
                        continue
                    payload = _gossip_payload(frame)
                    if payload is not None:
                        seen.append(payload)
            return seen

        return in_netns(self.bridge_ns, record)

    # ----- disk faults ---------------------------------------------------------------------

    def _make_disk(self, node: LabNode, disk: str, disk_bytes: int) -> None:
        """A small filesystem of the node's own as its data directory.

        tmpfs is enough for disk full; a read-only turn needs ext4 on a loop device, whose
        ``errors=remount-ro`` makes the kernel itself turn it read-only on an error (what a
        failing disk does), with the database open (a remount by hand is refused as busy).
        """
        node.disk, node.disk_bytes = disk, disk_bytes
        if disk == "tmpfs":
            run("mount", "-t", "tmpfs", "-o", f"size={disk_bytes}", "tmpfs", str(node.data_dir))
            self.mounts.append(node.data_dir)
            return
        assert disk == "ext4", disk
        image = self.root / f"n{node.index}.img"
        with image.open("wb") as handle:
            handle.truncate(disk_bytes)
        run("mkfs.ext4", "-q", "-F", str(image))
        node.loop = run("losetup", "-f", "--show", str(image)).strip()
        self.loops.append(node.loop)
        self._mount_ext4(node)

    def _mount_ext4(self, node: LabNode) -> None:
        run("mount", "-o", "errors=remount-ro", node.loop, str(node.data_dir))
        self.mounts.append(node.data_dir)

    def turn_read_only(self, index: int) -> None:
        """Make the kernel turn node ``index``'s ext4 read-only, as after a disk error."""
        node = self.nodes[index]
        assert node.disk == "ext4", "a read-only turn needs an ext4 data directory"
        name = os.path.basename(node.loop)
        Path(f"/sys/fs/ext4/{name}/trigger_fs_error").write_text("hearsay chaos test\n")

    def repair_disk(self, index: int) -> None:
        """What an operator does after a read-only turn: (node stopped) fsck, mount again."""
        node = self.nodes[index]
        assert not self.running(index), "stop the node before repairing its disk"
        run("umount", str(node.data_dir))
        self.mounts.remove(node.data_dir)
        done = subprocess.run(
            ["e2fsck", "-fy", node.loop], capture_output=True, timeout=60, check=False
        )
        assert done.returncode in (0, 1), done.stdout  # 1: errors corrected
        self._mount_ext4(node)

    def fill_disk(self, index: int) -> int:
        """Fill node ``index``'s tmpfs with a file until the disk is full; returns its size."""
        node = self.nodes[index]
        assert node.disk, "the node has no filesystem of its own"
        node.fill_path = node.data_dir / "chaos-fill"
        written = 0
        fd = os.open(node.fill_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for size in (1 << 20, 4096, 1):  # big blocks, then the last pages and bytes
                for _ in range(node.disk_bytes // size + 2):  # bounded
                    try:
                        written += os.write(fd, b"\0" * size)
                    except OSError as error:
                        if error.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return written

    def free_disk(self, index: int) -> None:
        node = self.nodes[index]
        if node.fill_path is not None:
            node.fill_path.unlink(missing_ok=True)
            node.fill_path = None

    # ----- teardown ------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every node (by PID), unmount, delete the namespaces this lab made, by name."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.kill(node.index)
        for mount in reversed(self.mounts):
            run("umount", str(mount), check=False)
        for loop in self.loops:
            run("losetup", "-d", loop, check=False)
        for name in reversed(self.namespaces):
            run("ip", "netns", "del", name, check=False)
        atexit.unregister(self.close)


def _gossip_payload(frame: bytes) -> bytes | None:
    """The UDP payload of an Ethernet frame carrying IPv4 UDP to the gossip port, else None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":  # IPv4
        return None
    ip = frame[14:]
    header_bytes = (ip[0] & 0x0F) * 4
    if ip[9] != 17:  # UDP
        return None
    udp = ip[header_bytes:]
    if int.from_bytes(udp[2:4], "big") != GOSSIP_PORT:
        return None
    length = int.from_bytes(udp[4:6], "big")
    return bytes(udp[8:length])


_NFT_TABLE = """
table inet chaos {
    chain input {
        type filter hook input priority 0; policy accept;
    }
}
"""
