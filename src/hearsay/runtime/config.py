"""``hearsay serve`` settings: defaults, a TOML file (``--config``), then flags (flags win)."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

from hearsay.base.errors import HearsayError
from hearsay.lattice.limits import KEY_BYTES_MAX_FLOOR, KEY_BYTES_MAX_LIMIT
from hearsay.persist.fsync import FsyncPolicy
from hearsay.runtime.log_format import LOG_FORMATS, LOG_LEVELS


class ConfigError(HearsayError, ValueError):
    """A setting is missing, unknown or malformed."""


@dataclass(slots=True)
class ServeConfig:
    """Everything one node needs to start. Port 0 picks a free port."""

    host: str = "127.0.0.1"
    port: int = 7379
    gossip_port: int = 7946
    http_port: int = 7380
    data_dir: str = "./data"
    join: list[str] = field(default_factory=list)
    rejoin: bool = True
    """At start, also join the peers remembered in the data directory (``peers.json``)."""
    advertise: str | None = None
    cluster: str = "hearsay"
    preset: str = "lan"
    fsync: FsyncPolicy = FsyncPolicy.EVERYSEC
    requirepass: str | None = None
    """Visible to every local user in ``ps`` when given as a flag: prefer ``requirepass_file``
    or the ``HEARSAY_REQUIREPASS`` environment variable."""
    requirepass_file: str | None = None
    keyring: str | None = None
    node_name: str | None = None
    insecure_gossip: bool = False
    """Serve key data to, and take writes from, anyone who reaches the gossip port without a
    keyring: needed to bind gossip beyond loopback without ``--keyring``, or to combine
    ``--requirepass`` with no keyring (see docs/security.md)."""
    rmbd_port: int | None = None
    rmbd_peer: bool = False
    """Honour rmbd ``PEER`` datagrams (unauthenticated: anyone who reaches the rmbd port can
    then make this node gossip to any address)."""
    rmbd_width: int = 100
    rmbd_depth: int = 10
    log_level: str = "info"
    log_format: str = "text"
    """``text`` (a line per record) or ``json`` (an object per line, for log shippers)."""
    maxclients: int = 10_000
    """Redis's default; lowered at start to what the file-descriptor limit allows."""
    client_output_buffer_limit: int = 256 * 1024 * 1024
    """Bytes of unsent replies one client may hold before it is disconnected; 0 = none."""
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_query_buffer_limit: int = 1024 * 1024 * 1024
    client_query_buffer_total_limit: int = 1024 * 1024 * 1024
    """Bytes of unfinished commands all clients together may hold; over it the client
    holding the most is evicted."""
    max_key_bytes: int = KEY_BYTES_MAX_LIMIT
    """The most one key may hold (its vectors' bytes); a write past it is refused whole, and
    so is a peer's delta. The default is also the highest value: a larger key could not be
    reloaded or replicated (see :mod:`hearsay.lattice.limits`)."""
    slowlog_slower_than_us: int = 10_000
    """SLOWLOG logs commands slower than this (Redis's slowlog-slower-than; negative: none)."""
    slowlog_max_len: int = 128
    """SLOWLOG keeps this many entries (Redis's slowlog-max-len)."""
    max_http_connections: int = 64
    """HTTP connections open at once; one more is answered 503 and closed."""
    client_idle_timeout_s: int = 0
    """Redis's ``timeout``: close a client idle (no command) for longer than this; 0 = never.
    Clients waiting for a reply (WAIT) and monitors are never closed for it, as in Redis."""
    """HTTP connections open at once; one more is answered 503 and closed."""
    tombstone_grace_s: int = 86_400
    """Deleted and expired keys are remembered this long (so that a lagging replica's late
    copy cannot bring them back), then forgotten. A node cut off for longer may resurrect
    keys deleted meanwhile (as Cassandra's gc_grace_seconds)."""
    retire_grace_s: int = 86_400
    """A node forgotten (HEARSAY.FORGET) this long ago has its slices of additive keys folded
    into one retired slice per key; its slices arriving later are refused."""

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def merged(self, values: dict[str, Any]) -> ServeConfig:
        """A copy with ``values`` (from TOML or flags; keys use ``_`` or ``-``) applied."""
        out = dataclasses.replace(self)
        known = self.field_names()
        for raw_name, raw_value in values.items():
            name = raw_name.replace("-", "_")
            if name not in known:
                raise ConfigError(f"unknown setting {raw_name!r}")
            value = raw_value
            if name == "fsync" and not isinstance(value, FsyncPolicy):
                value = FsyncPolicy.parse(str(value))
            if name == "join" and isinstance(value, str):
                value = [value]
            setattr(out, name, value)
        out.validate()
        return out

    def validate(self) -> None:
        for name in ("port", "gossip_port", "http_port"):
            port = getattr(self, name)
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be a port number 0..65535")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        if self.preset not in ("lan", "wan", "local"):
            raise ConfigError("preset must be lan, wan or local")
        if not self.cluster or len(self.cluster) > 64:
            raise ConfigError("cluster name must be 1..64 characters")
        if (
            not isinstance(self.max_key_bytes, int)
            or not KEY_BYTES_MAX_FLOOR <= self.max_key_bytes <= KEY_BYTES_MAX_LIMIT
        ):
            raise ConfigError(
                f"max_key_bytes must be {KEY_BYTES_MAX_FLOOR}..{KEY_BYTES_MAX_LIMIT} bytes"
            )
        if not isinstance(self.tombstone_grace_s, int) or self.tombstone_grace_s < 1:
            raise ConfigError("tombstone_grace_s must be a positive number of seconds")
        if not isinstance(self.retire_grace_s, int) or self.retire_grace_s < 0:
            raise ConfigError("retire_grace_s must be a number of seconds")
        if not isinstance(self.maxclients, int) or self.maxclients < 1:
            raise ConfigError("maxclients must be a positive number")
        if not isinstance(self.max_http_connections, int) or self.max_http_connections < 1:
            raise ConfigError("max_http_connections must be a positive number")
        if not isinstance(self.client_idle_timeout_s, int) or self.client_idle_timeout_s < 0:
            raise ConfigError("client_idle_timeout_s must be a number of seconds (0 = never)")
        for name in ("client_output_buffer_limit", "client_query_buffer_total_limit"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be a number of bytes (0 = no limit)")
        for name in ("proto_max_bulk_len", "client_query_buffer_limit"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive number of bytes")
        if not isinstance(self.slowlog_slower_than_us, int):
            raise ConfigError("slowlog_slower_than_us must be a number of microseconds")
        if not isinstance(self.slowlog_max_len, int) or self.slowlog_max_len < 0:
            raise ConfigError("slowlog_max_len must be a number of entries (0 = none kept)")
        if self.requirepass is not None and self.requirepass_file is not None:
            raise ConfigError("give requirepass or requirepass_file, not both")
        tcp_ports = [(f, getattr(self, f)) for f in ("port", "gossip_port", "http_port")]
        for index, (name, number) in enumerate(tcp_ports):
            for other, other_number in tcp_ports[index + 1 :]:
                if number and number == other_number:
                    raise ConfigError(f"{name} and {other} are both {number}: each needs its own")

    def listeners(self) -> list[Listener]:
        """Every listener the node will bind on a fixed port (port 0 is left out: the kernel
        picks a free one)."""
        tcp, udp = socket.SOCK_STREAM, socket.SOCK_DGRAM
        wanted = [
            Listener("RESP port", "TCP", "--port", self.port, tcp),
            Listener("gossip port", "UDP", "--gossip-port", self.gossip_port, udp),
            Listener("gossip port", "TCP streams", "--gossip-port", self.gossip_port, tcp),
            Listener("HTTP port", "TCP", "--http-port", self.http_port, tcp),
        ]
        if self.rmbd_port is not None:
            wanted.append(Listener("rmbd port", "UDP", "--rmbd-port", self.rmbd_port, udp))
        return [listener for listener in wanted if listener.port]

    def check_exposure(self, environ: Mapping[str, str]) -> None:
        """Refuse settings that open the data to strangers unless ``insecure_gossip`` says so.

        Without a keyring the gossip port answers anyone who reaches it with key data and
        merges their writes: that is only acceptable on loopback, and never beside a client
        password (which the gossip port would bypass, even for local users). Checked once,
        after the TOML file and the flags are merged (either may hold the keyring).
        """
        if self.keyring is not None or self.insecure_gossip:
            return
        password_sources = (self.requirepass, self.requirepass_file, environ.get(REQUIREPASS_ENV))
        if any(source is not None for source in password_sources):
            raise ConfigError(
                "a client password (--requirepass, --requirepass-file or HEARSAY_REQUIREPASS) "
                "without --keyring: the gossip port would serve every key to "
                "anyone who can reach it, password or not; add --keyring FILE (hearsay "
                "keygen makes a key) or, knowing the risk, --insecure-gossip"
            )
        if not is_loopback_host(self.host):
            raise ConfigError(
                f"gossip would listen on {self.host} without --keyring: anyone who reaches it "
                "could read and write every key; add --keyring FILE (hearsay keygen makes a "
                "key) or, knowing the risk, --insecure-gossip"
            )


class Listener(NamedTuple):
    """One socket a node listens on, named as an operator knows it."""

    role: str
    protocol: str
    flag: str
    port: int
    kind: socket.SocketKind


REQUIREPASS_ENV: Final = "HEARSAY_REQUIREPASS"
REQUIREPASS_FILE_BYTES_MAX: Final = 4096


def resolve_requirepass(config: ServeConfig, environ: Mapping[str, str]) -> str | None:
    """The AUTH password: from the setting, the file it names, or the environment variable.

    Exactly one source may give it, so that a stale variable cannot silently override a file
    (or the reverse). A file holds the password on its first line (a final newline is not
    part of it), as secrets managers write them.
    """
    from_env = environ.get(REQUIREPASS_ENV) or None
    given = [config.requirepass, config.requirepass_file, from_env]
    if sum(source is not None for source in given) > 1:
        raise ConfigError(
            f"the password is given more than once: use one of requirepass, requirepass_file "
            f"and the {REQUIREPASS_ENV} environment variable"
        )
    if config.requirepass_file is None:
        return config.requirepass if config.requirepass is not None else from_env
    try:
        with Path(config.requirepass_file).open("rb") as handle:
            raw = handle.read(REQUIREPASS_FILE_BYTES_MAX + 1)
    except OSError as error:
        raise ConfigError(
            f"cannot read requirepass file {config.requirepass_file}: {error.strerror}"
        ) from error
    if len(raw) > REQUIREPASS_FILE_BYTES_MAX:
        raise ConfigError(f"requirepass file is longer than {REQUIREPASS_FILE_BYTES_MAX} bytes")
    password = raw.split(b"\n", 1)[0].removesuffix(b"\r")
    if not password:
        raise ConfigError(f"requirepass file {config.requirepass_file} holds no password")
    return password.decode("utf-8", "surrogateescape")


class ListenerBusyError(HearsayError):
    """A port the node must listen on is taken (or cannot be bound)."""


def check_listeners_free(config: ServeConfig) -> None:
    """Binds, and at once closes, every listener's fixed port, so that a port in use is
    reported with its flag and the reason before the node opens its data directory.

    The node binds again when it starts (a port taken in between still fails there), with
    the options it uses: TCP listeners with SO_REUSEADDR (so a port in TIME_WAIT is free).
    """
    for listener in config.listeners():
        port, kind = listener.port, listener.kind
        try:
            addresses = socket.getaddrinfo(config.host, port, type=kind, flags=socket.AI_PASSIVE)
        except OSError as error:
            reason = error.strerror or str(error)
            raise ListenerBusyError(f"--host {config.host} does not resolve: {reason}") from None
        for family, _, proto, _, address in addresses:
            with socket.socket(family, kind, proto) as probe:
                if kind == socket.SOCK_STREAM:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(address)
                except OSError as error:
                    where = (
                        f"the {listener.role} {port} on {config.host} "
                        f"({listener.protocol}, {listener.flag})"
                    )
                    if error.errno == errno.EADDRINUSE:
                        raise ListenerBusyError(
                            f"{where} is in use by another process: stop it or choose another port"
                        ) from None
                    raise ListenerBusyError(f"{where} cannot be bound: {error.strerror}") from None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere


def load_toml(path: str) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys named like the flags."""
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from error
