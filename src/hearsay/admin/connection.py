"""How the admin tools reach a node: redis-cli's flags and environment, and one-line errors.

Flags win over the environment: ``-h/--host`` over ``HEARSAY_HOST``, ``-p/--port`` over
``HEARSAY_PORT``, ``-a/--password`` over ``HEARSAY_PASSWORD`` and then ``REDISCLI_AUTH`` (the
variable redis-cli reads, so one exported password serves both tools).

Every failure becomes an :class:`AdminError` carrying its exit status, so that scripts can
tell "the node is not there" from "the node said no" without parsing the message.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hearsay.base.errors import HearsayError

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

HOST_DEFAULT: Final = "127.0.0.1"
PORT_DEFAULT: Final = 7379
TIMEOUT_S: Final = 10.0
"""How long one command may take before the tool gives up (a stalled node must not hang it)."""


class Exit(enum.IntEnum):
    """The exit statuses of the admin tools (argparse's usage errors are 2)."""

    OK = 0
    REFUSED = 1
    """The node answered with an error (an unknown command, a wrong argument...)."""
    USAGE = 2
    UNREACHABLE = 3
    """No connection: refused, timed out, or the name does not resolve."""
    AUTH = 4
    """The node wants a password, or refused the one given."""


class AdminError(HearsayError):
    """A failure an admin command reports in one line, with the exit status it means."""

    def __init__(self, message: str, status: Exit) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Target:
    """Which node to talk to, and how."""

    host: str = HOST_DEFAULT
    port: int = PORT_DEFAULT
    password: str | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def client(self, read_timeout_s: float | None = TIMEOUT_S) -> redis.Redis:
        """A redis-py client of the node (bytes replies; no connection is made yet);
        ``read_timeout_s`` None waits for replies without end (a stream: MONITOR).

        One attempt, as redis-cli makes: redis-py's default retries a failed connection three
        times with backoff (about 5 s before a dead node is reported), and would send a
        pipeline of CMS increments again after a dropped connection, counting them twice.
        """
        import redis  # here, not above: ``hearsay serve`` loads this module, never redis-py
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            socket_timeout=read_timeout_s,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """redis-cli's connection flags (the parser must be made with ``add_help=False``:
    ``-h`` is the host, as in redis-cli; ``--help`` stays)."""
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-h", "--host", help=f"the node's address (HEARSAY_HOST; {HOST_DEFAULT})")
    parser.add_argument(
        "-p", "--port", type=int, help=f"the node's RESP port (HEARSAY_PORT; {PORT_DEFAULT})"
    )
    parser.add_argument(
        "-a",
        "--password",
        help="the node's AUTH password (shows in ps: prefer HEARSAY_PASSWORD or REDISCLI_AUTH)",
    )


def target_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """The node named by the flags, else the environment, else the defaults."""
    host = args.host or environ.get("HEARSAY_HOST") or HOST_DEFAULT
    port_text = args.port if args.port is not None else environ.get("HEARSAY_PORT")
    try:
        port = int(port_text) if port_text is not None else PORT_DEFAULT
    except ValueError:
        raise AdminError(f"HEARSAY_PORT is not a port number: {port_text!r}", Exit.USAGE) from None
    if not 0 < port <= 65535:
        raise AdminError(f"port must be 1..65535, not {port}", Exit.USAGE)
    password = (
        args.password
        if args.password is not None
        else environ.get("HEARSAY_PASSWORD") or environ.get("REDISCLI_AUTH") or None
    )
    return Target(host, port, password)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@contextmanager
def talking_to(target: Target) -> Iterator[None]:
    """Turns redis-py's exceptions into one-line :class:`AdminError` s that name the node."""
    import redis

    where = target.address
    try:
        yield
    except redis.AuthenticationError as error:  # NOAUTH, WRONGPASS (a ConnectionError: first)
        if target.password is None:
            raise AdminError(
                f"{where} needs a password: give -a/--password, HEARSAY_PASSWORD or REDISCLI_AUTH",
                Exit.AUTH,
            ) from None
        raise AdminError(f"{where} refused the password: {_first_line(error)}", Exit.AUTH) from None
    except redis.ResponseError as error:
        raise AdminError(f"{where} answered: {_first_line(error)}", Exit.REFUSED) from None
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise AdminError(f"cannot reach {where}: {_first_line(error)}", Exit.UNREACHABLE) from None


def send(client: redis.Redis | Pipeline, *args: str | bytes | int | float) -> Any:
    """One command, by name (redis-py's ``execute_command`` carries no type hints)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]
