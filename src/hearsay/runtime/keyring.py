"""The gossip keyring file (``--keyring``): one base64 AES key per line, the first primary.

Read once at start; every way the file can be wrong (unreadable, binary, a line that is not
base64 or not a key's length, no key at all) is a :class:`KeyringError` that names the file and
the line, so that ``hearsay serve`` can refuse to start with one clear line. Messages never
quote a line: it may be a key.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Final

from hearsay.base.errors import HearsayError
from hearsay.protocol.envelope import KEY_SIZES, Keyring

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
