"""Joining a cluster the way operators do: seeds by IP address or host name, retried.

Why this module exists: a seed given to ``--join``, ``HEARSAY.JOIN`` or remembered from the
peer snapshot may be a name that does not resolve yet (DNS not ready, a typo) or an address
nobody answers on yet (the seed starts later). Each seed gets one task that, at every attempt,
resolves the name (A and AAAA records, with getaddrinfo in a daemon thread of its own: never
blocking the loop, and never holding up the node's exit, see :func:`_getaddrinfo`), hands
every address it got to gossip as a seed, and then checks, one retry delay later, whether the
node has a live member. Until it has, the attempt failed: it is retried after an exponential
delay with jitter (``JOIN_RETRY_FIRST_S`` doubling up to ``JOIN_RETRY_MAX_S``, each delay
drawn from its upper half by the injected Random), at most ``JOIN_ATTEMPTS_MAX`` times, then
given up with a warning.

A failed attempt is logged as one line (seed, reason, next retry in N s), never a traceback:
the first failure, then again only when the reason changes or ``JOIN_LOG_INTERVAL_S`` passed.
``attempts``, ``failures`` and ``resolve_failures`` count every attempt for INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from hearsay.protocol.membership import Address
from hearsay.runtime.addresses import format_address, is_ip

log = logging.getLogger(__name__)

JOIN_RETRY_FIRST_S: Final = 2.0
JOIN_RETRY_MAX_S: Final = 60.0
JOIN_ATTEMPTS_MAX: Final = 30
"""About 20 minutes of retries (a capped delay averages 45 s): a seed that never comes stops
costing."""
JOIN_LOG_INTERVAL_S: Final = 60.0
"""A failure with the same reason as the last one logged is logged again after this long."""
RESOLVE_TIMEOUT_S: Final = 10.0
ADDRESSES_PER_NAME_MAX: Final = 16
"""Addresses of one name handed to gossip (a round-robin seed name may hold many)."""
JOINS_MAX: Final = 64
"""Seeds being joined at once; more are refused (logged) until some finish."""


class RandomSource(Protocol):
    def random(self) -> float: ...


Resolve = Callable[[str, int], Awaitable[list[Address]]]
"""A seed's addresses (raises :class:`ResolveError` with the reason when it has none)."""


class ResolveError(Exception):
    """A name gave no address gossip can use; the message says why."""


def retry_delay_s(attempt: int, rng: RandomSource) -> float:
    """The delay after failed attempt number ``attempt`` (1, 2 ...): exponential, capped, and
    drawn from the upper half of that step so that nodes started together spread out."""
    step_s = min(JOIN_RETRY_MAX_S, JOIN_RETRY_FIRST_S * 2.0 ** min(attempt - 1, 32))
    return step_s / 2 + rng.random() * step_s / 2


async def resolve_for(family: socket.AddressFamily, host: str, port: int) -> list[Address]:
    """``host``'s addresses usable from a socket of ``family`` (A and AAAA records; IPv4 ones
    as IPv4-mapped addresses on an IPv6 socket), in the resolver's order, without repeats.
    An IP address is returned as it is."""
    if is_ip(host):
        return [(host, port)]  # as given (one gossip cannot send to is counted in send_errors)
    try:
        # Not asyncio.wait_for: on 3.11, a cancel arriving as the lookup completes is
        # swallowed and the lookup's result returned; a stopping node's join then went on
        # retrying, and the stop waited for it (1 run in 15 of a test stopping after a join).
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await _getaddrinfo(host, port)
    except TimeoutError:
        waited = f"{RESOLVE_TIMEOUT_S:.0f} s"
        raise ResolveError(f"no answer from the resolver in {waited}") from None
    except (OSError, ValueError) as error:  # (UnicodeError and "embedded null" too)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ResolveError(f"does not resolve ({reason})") from None
    usable: list[Address] = []
    for ip in infos:
        if family == socket.AF_INET and ":" in ip:
            continue
        address = (f"::ffff:{ip}" if family == socket.AF_INET6 and ":" not in ip else ip, port)
        if address not in usable:
            usable.append(address)
    if not usable:
        kinds = "IPv6" if family == socket.AF_INET else "IPv4"
        raise ResolveError(f"resolves only to {kinds} addresses, which gossip cannot reach")
    return usable[:ADDRESSES_PER_NAME_MAX]


def _getaddrinfo(host: str, port: int) -> asyncio.Future[list[str]]:
    """The IP addresses ``socket.getaddrinfo`` finds, looked up in a daemon thread and
    delivered to the running loop.

    Not the loop's resolver: asyncio's thread pool is joined when the loop shuts down (and
    the interpreter joins such pools at exit), so a lookup the resolver is slow to answer held
    a stopping node until it returned (measured: a stop waited the whole 8 s of a slowed
    lookup). A CI run once saw a node take over 20 s to stop just after a HEARSAY.JOIN of an
    unresolvable name; this was the likely cause. A daemon thread is abandoned instead; what it
    finds after the loop closed is dropped. At most ``JOINS_MAX`` run at once (one per join)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[str]] = loop.create_future()

    def deliver(result: list[str] | None, error: BaseException | None) -> None:
        if future.done():  # (cancelled: the join stopped or timed out)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def lookup() -> None:
        try:
            infos: list[str] | None = [
                str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            ]
            error: BaseException | None = None
        except (OSError, ValueError) as exc:  # (UnicodeError and "embedded null" too)
            infos, error = None, exc
        # (the loop closed while we looked: nobody waits any more)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, infos, error)

    threading.Thread(target=lookup, name="hearsay-resolve", daemon=True).start()
    return future


@dataclass(slots=True)
class _LogState:
    reason: str = ""
    logged_at_s: float | None = None


class Joiner:
    """The join tasks of one node: one per seed, each until the node has a live member."""

    def __init__(
        self,
        resolve: Resolve,
        add_seeds: Callable[[list[Address]], None],
        has_live_member: Callable[[], bool],
        rng: RandomSource,
    ) -> None:
        self._resolve = resolve
        self._add_seeds = add_seeds
        self._has_live_member = has_live_member
        self._rng = rng
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.attempts = 0
        """Join attempts made (every resolution and hand-over to gossip)."""
        self.failures = 0
        """Attempts that failed (no address, or no live member one retry delay later)."""
        self.resolve_failures = 0
        """Attempts whose name gave no usable address."""

    def join(self, seeds: Sequence[Address], label: str) -> None:
        """Start joining through ``seeds`` (IP addresses or host names; ``label`` names them
        in the log and keys the task) unless that is under way already."""
        if label in self._tasks:
            return
        if len(self._tasks) >= JOINS_MAX:
            log.warning("join %s ignored: %d seeds being joined already", label, JOINS_MAX)
            return
        task = asyncio.get_running_loop().create_task(self._join(tuple(seeds), label))
        self._tasks[label] = task
        task.add_done_callback(lambda _: self._tasks.pop(label, None))

    def joining(self) -> int:
        """Seeds still being joined."""
        return len(self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _addresses(self, seeds: tuple[Address, ...]) -> list[Address]:
        """Every address of every seed (the first seed's reason when none resolves)."""
        found: list[Address] = []
        first_error: ResolveError | None = None
        for host, port in seeds:
            try:
                found.extend(a for a in await self._resolve(host, port) if a not in found)
            except ResolveError as error:
                first_error = first_error or error
        if not found:
            assert first_error is not None
            raise first_error
        return found

    async def _join(self, seeds: tuple[Address, ...], label: str) -> None:
        said = _LogState()
        for attempt in range(1, JOIN_ATTEMPTS_MAX + 1):
            self.attempts += 1
            delay_s = retry_delay_s(attempt, self._rng)
            try:
                addresses = await self._addresses(seeds)
            except ResolveError as error:
                self.resolve_failures += 1
                reason, next_try = str(error), f"next retry in {delay_s:.1f} s"
            else:
                self._add_seeds(addresses)
                await asyncio.sleep(delay_s)
                if self._has_live_member():
                    if attempt > 1:
                        log.info("joined through %s after %d attempts", label, attempt)
                    return
                listed = ", ".join(format_address(*address) for address in addresses[:3])
                if len(addresses) > 3:
                    listed += f" and {len(addresses) - 3} more"
                reason = f"no member answered at {listed}"
                next_try = f"waited {delay_s:.1f} s, retrying now"
                delay_s = 0.0  # this attempt waited its delay already
            self.failures += 1
            if attempt == JOIN_ATTEMPTS_MAX:
                log.warning(
                    "join %s failed: %s; giving up after %d attempts", label, reason, attempt
                )
                return
            now_s = asyncio.get_running_loop().time()
            if (
                reason != said.reason
                or said.logged_at_s is None
                or now_s - said.logged_at_s >= JOIN_LOG_INTERVAL_S
            ):
                said.reason, said.logged_at_s = reason, now_s
                log.warning(
                    "join %s failed: %s; %s (attempt %d of %d)",
                    label,
                    reason,
                    next_try,
                    attempt,
                    JOIN_ATTEMPTS_MAX,
                )
            await asyncio.sleep(delay_s)
