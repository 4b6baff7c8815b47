"""The gossip keyring file (``--keyring``): one base64 AES key per line, the first primary.

Read once at start; every way the file can be wrong (unreadable, binary, a line that is not
base64 or not a key's length, no key at all) is a :class:`KeyringError` that names the file and
the line, so that ``hearsay serve`` can refuse to start with one clear line. Messages never
quote a line: it may be a key.

A running node's keyring that does not match a peer's is reported by
:class:`KeyringMismatches`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Final

from hearsay.base.errors import HearsayError
from hearsay.protocol.envelope import KEY_SIZES, Keyring
from hearsay.runtime.addresses import format_address

log = logging.getLogger(__name__)

KEYRING_BYTES_MAX: Final = 64 * 1024
"""A keyring holds a few keys of 44 characters; a larger file is not one."""


class KeyringError(HearsayError, ValueError):
    """The keyring file is missing, empty or holds something that is not a key."""


def load_keyring(path: str) -> Keyring:
    """The keys of ``path``; blank lines and surrounding blanks are ignored."""
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(KEYRING_BYTES_MAX + 1)
    except OSError as error:
        raise KeyringError(f"cannot read keyring {path}: {error.strerror}") from error
    if len(raw) > KEYRING_BYTES_MAX:
        raise KeyringError(f"keyring {path} is over {KEYRING_BYTES_MAX} bytes: not a keyring")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyringError(
            f"keyring {path} is not text: it should hold base64 keys, one a line "
            "(hearsay keygen makes one)"
        ) from None
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            key = base64.b64decode(line.strip(), validate=True)
        except binascii.Error:
            raise KeyringError(f"keyring {path} line {number} is not base64") from None
        if len(key) not in KEY_SIZES:
            sizes = "/".join(str(size) for size in sorted(KEY_SIZES))
            raise KeyringError(
                f"keyring {path} line {number} is a {len(key)}-byte key: an AES key is "
                f"{sizes} bytes (hearsay keygen makes one)"
            )
        keys.append(key)
    if not keys:
        raise KeyringError(f"keyring {path} holds no key")
    try:
        return Keyring(keys[0], tuple(keys[1:]))
    except ValueError as error:  # too many keys
        raise KeyringError(f"keyring {path}: {error}") from error


KEYRING_MISMATCH_REASONS: Final = ("unauthenticated", "decrypt-failed")
"""The envelope's drop reasons that mean a peer's keyring does not match ours."""
MISMATCH_LOG_INTERVAL_S: Final = 600.0
"""A peer address whose mismatch was logged is logged again after this long at the earliest."""
MISMATCH_ADDRESSES_MAX: Final = 1024
"""Peer addresses remembered as logged (the oldest is forgotten first)."""


class KeyringMismatches:
    """Datagrams a peer sent that our keyring cannot open: every one counted (INFO
    ``keyring_mismatches``), one log line per peer address (again after
    ``MISMATCH_LOG_INTERVAL_S``), with the reason an operator can act on."""

    def __init__(self, has_keyring: bool) -> None:
        self._has_keyring = has_keyring
        self.count = 0
        self._logged_at_s: OrderedDict[str, float] = OrderedDict()

    def note(self, source: tuple[str, int], reason: str, now_s: float) -> None:
        """Count a dropped datagram if ``reason`` is a keyring mismatch; log it if due."""
        if reason not in KEYRING_MISMATCH_REASONS:
            return
        self.count += 1
        peer = format_address(*source)
        logged = self._logged_at_s.get(peer)
        if logged is not None and now_s - logged < MISMATCH_LOG_INTERVAL_S:
            return
        self._logged_at_s[peer] = now_s
        self._logged_at_s.move_to_end(peer)
        while len(self._logged_at_s) > MISMATCH_ADDRESSES_MAX:
            self._logged_at_s.popitem(last=False)
        if reason == "decrypt-failed":
            why = "no key of our keyring opens its packets (different --keyring files?)"
        elif self._has_keyring:
            why = "it sends plaintext and this node requires its --keyring"
        else:
            why = "it encrypts its packets and this node has no --keyring"
        log.warning(
            "keyring mismatch with peer %s: %s; its gossip is dropped (%d so far)",
            peer,
            why,
            self.count,
        )
