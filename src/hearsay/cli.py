"""The ``hearsay`` command: ``serve`` (a node), ``sim`` (the simulator), ``keygen``, ``backup``,
and the admin tools that talk to a running node (``members``, ``info``, ``join``, ``leave``,
``keys``, ``import``, ``import-redis``, ``demo``: see :mod:`hearsay.admin`).

Settings for ``serve`` come from defaults, then a TOML file (``--config``), then flags: flags
win. Every flag is also a TOML key (``gossip-port = 7946`` or ``gossip_port = 7946``).
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from hearsay import __version__
from hearsay.admin.parsers import add_admin_parsers
from hearsay.base.errors import HearsayError
from hearsay.persist.fsync import FsyncPolicy
from hearsay.runtime.log_format import LOG_FORMATS, LOG_LEVELS


def _fsync_policy(text: str) -> FsyncPolicy:
    """``--fsync``'s value; a wrong one is reported with the choices (argparse would only say
    "invalid parse value")."""
    try:
        return FsyncPolicy.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_serve(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run one node",
        description="Run one hearsay node: RESP for clients, gossip for peers, HTTP for status.",
    )
    add = serve.add_argument
    # Defaults are None so that only flags given on the command line override the TOML file.
    add("--config", metavar="FILE", help="TOML file of settings (flags win)")
    add("--host", help="address every listener binds (default 127.0.0.1)")
    add("--port", type=int, help="RESP port for clients (default 7379; 0 = any free port)")
    add("--gossip-port", type=int, help="UDP and TCP port for peers (default 7946)")
    add("--http-port", type=int, help="HTTP port for status and metrics (default 7380)")
    add("--data-dir", help="where the node keeps its data (default ./data)")
    add("--join", action="append", metavar="HOST:PORT", help="a peer to join (repeatable)")
    add(
        "--no-rejoin",
        dest="rejoin",
        action="store_false",
        default=None,
        help="do not rejoin the peers remembered in the data directory at start",
    )
    add("--advertise", metavar="HOST:PORT", help="the gossip address peers should use")
    add("--cluster", help="cluster name; packets of other clusters are dropped")
    add("--preset", choices=["lan", "wan", "local"], help="gossip timing preset (default lan)")
    add("--fsync", type=_fsync_policy, help="always | everysec (default) | no")
    add(
        "--requirepass",
        help="password clients must AUTH with (shows in ps: prefer --requirepass-file "
        "or the HEARSAY_REQUIREPASS environment variable)",
    )
    add("--requirepass-file", metavar="FILE", help="read the AUTH password from FILE")
    add("--maxclients", type=int, help="most clients at once (default 10000, or fewer fds)")
    add(
        "--client-output-buffer-limit",
        type=int,
        metavar="BYTES",
        help="unsent replies one client may hold before it is dropped (default 256 MiB; 0 = none)",
    )
    add("--proto-max-bulk-len", type=int, metavar="BYTES", help="longest argument (512 MiB)")
    add(
        "--client-query-buffer-limit",
        type=int,
        metavar="BYTES",
        help="one client's unfinished command (default 1 GiB)",
    )
    add(
        "--client-query-buffer-total-limit",
        type=int,
        metavar="BYTES",
        help="every client's unfinished commands together (default 1 GiB; 0 = none)",
    )
    add("--keyring", metavar="FILE", help="gossip encryption keys, one base64 key per line")
    add("--node-name", help="this node's name (default: its node id)")
    add(
        "--insecure-gossip",
        action="store_true",
        default=None,
        help="allow gossip without --keyring beyond loopback or beside --requirepass: anyone "
        "who reaches the gossip port can then read and write every key",
    )
    add("--rmbd-port", type=int, help="also speak rmbd's count-min datagrams on this UDP port")
    add(
        "--rmbd-peer",
        action="store_true",
        default=None,
        help="honour rmbd PEER datagrams (unauthenticated: anyone can make the node gossip "
        "to any address)",
    )
    add("--rmbd-width", type=int, help="rmbd count-min width (default 100)")
    add("--rmbd-depth", type=int, help="rmbd count-min depth (default 10)")
    add("--log-level", choices=LOG_LEVELS, help="default info")
    add("--log-format", choices=LOG_FORMATS, help="text (default) or json: one object a line")
    add(
        "--max-key-bytes",
        type=int,
        metavar="BYTES",
        help="the most one key may hold; larger writes are refused (default and most 33554432)",
    )
    add(
        "--slowlog-slower-than-us",
        type=int,
        metavar="MICROSECONDS",
        help="SLOWLOG logs commands slower than this (default 10000; negative: none)",
    )
    add("--slowlog-max-len", type=int, metavar="N", help="SLOWLOG entries kept (default 128)")
    add(
        "--max-http-connections",
        type=int,
        metavar="N",
        help="HTTP connections at once; one more is answered 503 (default 64)",
    )
    add(
        "--client-idle-timeout-s",
        type=int,
        metavar="SECONDS",
        help="close clients idle this long, as Redis's timeout (default 0: never)",
    )
    add(
        "--tombstone-grace-s",
        type=int,
        metavar="SECONDS",
        help="how long deleted and expired keys are remembered (default 86400)",
    )
    add(
        "--retire-grace-s",
        type=int,
        metavar="SECONDS",
        help="fold a forgotten node's slices this long after it departed (default 86400)",
    )


def _serve(args: argparse.Namespace) -> int:
    from hearsay.runtime.config import (
        ListenerBusyError,
        ServeConfig,
        check_listeners_free,
        load_toml,
    )
    from hearsay.runtime.log_format import configure_logging
    from hearsay.runtime.server import run

    values = load_toml(args.config) if args.config else {}
    flags = {
        name: value
        for name, value in vars(args).items()
        if value is not None and name not in ("command", "config", "func")
    }
    config = ServeConfig().merged(values).merged(flags)
    config.check_exposure(os.environ)
    try:
        check_listeners_free(config)
    except ListenerBusyError as error:  # as the node's own start failures: status 1
        print(f"hearsay: cannot start: {error}", file=sys.stderr)
        return 1
    configure_logging(config.log_level, config.log_format)
    return run(config)


def _keygen(args: argparse.Namespace) -> int:
    """A new 256-bit gossip encryption key, base64: one line of a keyring file."""
    print(base64.b64encode(secrets.token_bytes(32)).decode())
    return 0


def _backup(args: argparse.Namespace) -> int:
    """A consistent copy of a (possibly running) node's data directory."""
    from hearsay.persist.backup import backup

    result = backup(args.data_dir, args.destination)
    print(f"backed up {result.entries} entries to {args.destination}")
    if result.damaged:
        print(f"hearsay: {result.damaged} damaged entries copied as they are", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hearsay", description="A distributed, eventually consistent sketch database."
    )
    parser.add_argument("--version", action="version", version=f"hearsay {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_serve(subparsers)
    subparsers.add_parser("keygen", help="print a new gossip encryption key (base64)")
    backup = subparsers.add_parser(
        "backup",
        help="copy a data directory consistently, even while its node runs",
        description="Copy the database of --data-dir into DESTINATION (a new directory) as "
        "of one instant, using SQLite's online backup, then verify the copy.",
    )
    backup.add_argument("--data-dir", default="./data", help="the node's data directory")
    backup.add_argument("destination", help="a new directory for the copy")
    subparsers.add_parser(
        "sim", help="run the deterministic simulator (see hearsay sim --help)", add_help=False
    )
    add_admin_parsers(subparsers)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sim"]:
        from hearsay.sim.cli import main as sim_main

        return sim_main(arguments[1:])
    args = parser.parse_args(arguments)
    if hasattr(args, "run"):  # an admin tool: it reports its own errors
        status: int = args.run(args)
        return status
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "backup":
            return _backup(args)
        return _keygen(args)
    except HearsayError as error:
        print(f"hearsay: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
