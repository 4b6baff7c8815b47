"""The admin subcommands of ``hearsay``: their flags, and running them with one-line errors.

Each subcommand gets redis-cli's connection flags (so ``-h`` is the host and help is
``--help``) and sets ``run``, which :func:`hearsay.cli.main` calls. Failures print one line,
``hearsay: <what happened>``, and exit with the status :class:`~connection.Exit` gives them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from hearsay.admin import commands, demo, import_redis, importer
from hearsay.admin.connection import AdminError, Exit, Target, add_connection_flags, target_from

INTERRUPTED_STATUS = 130
"""A shell's status for a command stopped by Ctrl-C (128 + SIGINT)."""


def _reported(call: Callable[[], object]) -> int:
    """Runs a tool; its failures become one line on stderr and an exit status. A reader that
    stops early (``hearsay keys | head``) ends the output quietly."""
    try:
        call()
        sys.stdout.flush()
    except AdminError as error:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
        print(f"hearsay: {error}", file=sys.stderr)
        return int(error.status)
    except BrokenPipeError:
        # Python would report the broken pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.REFUSED)
    except KeyboardInterrupt:
        print("hearsay: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    return int(Exit.OK)


def _guarded(action: Callable[[argparse.Namespace, Target], object]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        return _reported(lambda: action(args, target_from(args, os.environ)))

    return run


def _import(args: argparse.Namespace, target: Target) -> None:
    separator = "\t" if args.separator in ("tab", "\\t") else args.separator
    report = importer.import_file(
        target,
        args.file,
        args.key,
        args.type,
        column=args.column,
        separator=separator.encode(),
        capacity=args.capacity,
        error_rate=args.error_rate,
        progress_stream=None if args.quiet else sys.stderr,
        stdin=sys.stdin.buffer,
    )
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
    else:
        print(report.summary())


def _import_redis(args: argparse.Namespace, target: Target) -> None:
    report = import_redis.copy_hlls(args.source, target, args.match)
    print(report.as_json() if args.json else report.summary(args.source))


def add_admin_parsers(subparsers: Any) -> None:
    """Adds members, info, join, leave, force-leave, keys, monitor, import(-redis) and demo."""

    def add(name: str, help_text: str, action: Callable[..., object]) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, help=help_text, description=help_text, add_help=False
        )
        add_connection_flags(parser)
        parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
        parser.set_defaults(run=_guarded(action))
        return parser

    add(
        "members",
        "the members a node knows: name, address, state, phi, generation",
        lambda args, target: commands.members(target, args.json, sys.stdout),
    )
    info = add(
        "info",
        "a node's INFO, every section or one",
        lambda args, target: commands.info(target, args.section, args.json, sys.stdout),
    )
    info.add_argument("section", nargs="?", help="server, clients, gossip, persistence...")
    join = add(
        "join",
        "ask a node to contact a peer (HEARSAY.JOIN)",
        lambda args, target: commands.join(target, args.peer, args.json, sys.stdout),
    )
    join.add_argument("peer", metavar="HOST:PORT", help="the peer's gossip address")
    add(
        "leave",
        "ask a node to announce that it leaves the cluster (HEARSAY.LEAVE)",
        lambda args, target: commands.leave(target, args.json, sys.stdout),
    )
    force_leave = add(
        "force-leave",
        "mark a failed member left on every node (HEARSAY.FORCELEAVE)",
        lambda args, target: commands.force_leave(target, args.name, args.json, sys.stdout),
    )
    force_leave.add_argument("name", help="the failed member's name (as hearsay members shows)")
    keys = add(
        "keys",
        "every key (matching PATTERN) and its type, by SCAN",
        lambda args, target: commands.keys(target, args.pattern, args.json, sys.stdout),
    )
    keys.add_argument("pattern", nargs="?", help="a glob, as SCAN MATCH (default: every key)")
    add(
        "monitor",
        "stream every command the node runs (MONITOR) until Ctrl-C",
        lambda args, target: commands.monitor(target, args.json, sys.stdout),
    )
    load = add("import", "add the items of a file (one a line) to a sketch", _import)
    load.add_argument("file", metavar="FILE", help="the file (- reads standard input)")
    load.add_argument("--key", required=True, help="the key to add to")
    load.add_argument("--type", required=True, choices=importer.KINDS, help="the sketch")
    load.add_argument("--column", type=int, metavar="N", help="take field N (from 1) of each line")
    load.add_argument(
        "--separator", default=",", help="what separates fields for --column (default ,; tab)"
    )
    load.add_argument(
        "--capacity", type=int, default=100_000, help="a new Bloom filter's capacity (100000)"
    )
    load.add_argument(
        "--error-rate",
        type=float,
        default=0.01,
        help="a new Bloom filter's false-positive rate, a new count-min sketch's error (0.01)",
    )
    load.add_argument("--quiet", action="store_true", help="no progress, only the summary")
    copy = add("import-redis", "copy the HyperLogLogs of a running Redis", _import_redis)
    copy.add_argument("source", metavar="redis://HOST:PORT", help="the Redis to copy from")
    copy.add_argument("--match", metavar="PATTERN", help="only keys matching this glob")
    demo_parser = subparsers.add_parser(
        "demo",
        help="a 3-node cluster on loopback: a stream, a crash, the answers (under a minute)",
        description="Start three nodes in a temporary directory, write a stream of page "
        "views, kill and restart one node, print what every node answers, stop everything.",
    )
    demo_parser.add_argument("--seed", type=int, default=1, help="the stream's random seed")
    demo_parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    return _reported(lambda: demo.run(sys.stdout, seed=args.seed))
