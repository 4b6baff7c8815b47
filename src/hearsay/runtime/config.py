"""``hearsay serve`` settings: defaults, a TOML file (``--config``), then flags (flags win)."""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hearsay.base.errors import HearsayError
from hearsay.persist.fsync import FsyncPolicy


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
    advertise: str | None = None
    cluster: str = "hearsay"
    preset: str = "lan"
    fsync: FsyncPolicy = FsyncPolicy.EVERYSEC
    requirepass: str | None = None
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
    tombstone_grace_s: int = 86_400
    """Deleted and expired keys are remembered this long (so that a lagging replica's late
    copy cannot bring them back), then forgotten. A node cut off for longer may resurrect
    keys deleted meanwhile (as Cassandra's gc_grace_seconds)."""

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
        if self.preset not in ("lan", "wan", "local"):
            raise ConfigError("preset must be lan, wan or local")
        if not self.cluster or len(self.cluster) > 64:
            raise ConfigError("cluster name must be 1..64 characters")
        if not isinstance(self.tombstone_grace_s, int) or self.tombstone_grace_s < 1:
            raise ConfigError("tombstone_grace_s must be a positive number of seconds")

    def check_exposure(self) -> None:
        """Refuse settings that open the data to strangers unless ``insecure_gossip`` says so.

        Without a keyring the gossip port answers anyone who reaches it with key data and
        merges their writes: that is only acceptable on loopback, and never beside a client
        password (which the gossip port would bypass, even for local users). Checked once,
        after the TOML file and the flags are merged (either may hold the keyring).
        """
        if self.keyring is not None or self.insecure_gossip:
            return
        if self.requirepass is not None:
            raise ConfigError(
                "--requirepass without --keyring: the gossip port would serve every key to "
                "anyone who can reach it, password or not; add --keyring FILE (hearsay "
                "keygen makes a key) or, knowing the risk, --insecure-gossip"
            )
        if not is_loopback_host(self.host):
            raise ConfigError(
                f"gossip would listen on {self.host} without --keyring: anyone who reaches it "
                "could read and write every key; add --keyring FILE (hearsay keygen makes a "
                "key) or, knowing the risk, --insecure-gossip"
            )


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
