"""The envelope: cluster and version checks, AES-GCM with a rotating keyring, typed errors."""

from __future__ import annotations

import random

import pytest

from hearsay.base.errors import DecodeError
from hearsay.protocol.envelope import (
    MAGIC,
    EnvelopeCodec,
    EnvelopeError,
    Keyring,
    MessageType,
    is_envelope,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
KEY_C = bytes(range(2, 18))


def _nonces(seed: int = 7) -> random.Random:
    return random.Random(seed)


def test_plain_round_trip_and_magic() -> None:
    codec = EnvelopeCodec("prod")
    data = codec.seal(MessageType.PUSH, b"payload")
    assert data.startswith(MAGIC)
    assert is_envelope(data)
    assert codec.open(data) == (MessageType.PUSH, b"payload")
    assert len(data) == codec.overhead_bytes() + len(b"payload")


def test_message_types_are_never_renumbered() -> None:
    assert [int(t) for t in MessageType] == list(range(1, len(MessageType) + 1))
    assert MessageType.PUSH == 1 and MessageType.MEMBERSHIP == 9


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.replace(b"prod", b"prox", 1), "foreign-cluster"),
        (lambda d: d[:5] + b"\x03" + d[6:], "foreign-cluster"),  # a shorter name: "pro"
        (lambda d: d[:3] + b"\x01" + d[4:], "version"),  # version 1 had no replay stamp
        (lambda d: d[:3] + b"\x02" + d[4:], "version"),  # version 2 sent membership as maps
        (lambda d: b"xyz" + d[3:], "malformed"),
        (lambda d: d[:5], "malformed"),
        (lambda d: d[:4] + b"\x80" + d[5:], "malformed"),
        (lambda d: d[:5] + b"\x00" + d[6:], "malformed"),  # an empty cluster name
        (lambda d: d[:5] + b"\x40" + d[6:], "malformed"),  # a name longer than the packet
    ],
)
def test_bad_headers_raise_one_typed_error(mutate: object, reason: str) -> None:
    codec = EnvelopeCodec("prod")
    valid = codec.seal(MessageType.ACK, b"\x90")
    assert codec.open(valid) == (MessageType.ACK, b"\x90")
    data = mutate(valid)  # type: ignore[operator]
    assert data != valid
    with pytest.raises(EnvelopeError) as caught:
        codec.open(data)
    assert caught.value.reason == reason
    assert isinstance(caught.value, DecodeError)


def test_another_clusters_packet_is_foreign() -> None:
    with pytest.raises(EnvelopeError) as caught:
        EnvelopeCodec("prod").open(EnvelopeCodec("test").seal(MessageType.ACK, b"\x90"))
    assert caught.value.reason == "foreign-cluster"


def test_unknown_type_is_refused_not_crashed() -> None:
    codec = EnvelopeCodec("prod")
    data = bytearray(codec.seal(MessageType.ACK, b""))
    data[codec.overhead_bytes() - 1] = 200
    with pytest.raises(EnvelopeError) as caught:
        codec.open(bytes(data))
    assert caught.value.reason == "unknown-type"


def test_oversize_is_refused_before_work() -> None:
    codec = EnvelopeCodec("prod")
    with pytest.raises(EnvelopeError) as caught:
        codec.open(codec.seal(MessageType.PUSH, b"x" * 2000), bytes_max=1400)
    assert caught.value.reason == "oversize"


def test_encrypted_round_trip_hides_payload() -> None:
    codec = EnvelopeCodec("prod", Keyring(KEY_A), nonce_source=_nonces().randbytes)
    data = codec.seal(MessageType.PUSH, b"secret payload")
    assert b"secret" not in data
    assert codec.open(data) == (MessageType.PUSH, b"secret payload")


def test_tampering_and_wrong_keys_are_rejected() -> None:
    sender = EnvelopeCodec("prod", Keyring(KEY_A), nonce_source=_nonces().randbytes)
    data = bytearray(sender.seal(MessageType.PUSH, b"payload"))
    data[-1] ^= 1
    with pytest.raises(EnvelopeError) as caught:
        sender.open(bytes(data))
    assert caught.value.reason == "decrypt-failed"
    stranger = EnvelopeCodec("prod", Keyring(KEY_B), nonce_source=_nonces().randbytes)
    with pytest.raises(EnvelopeError) as caught:
        stranger.open(sender.seal(MessageType.PUSH, b"payload"))
    assert caught.value.reason == "decrypt-failed"


def test_relabelled_cluster_fails_authentication() -> None:
    a = EnvelopeCodec("aaaa", Keyring(KEY_A), nonce_source=_nonces().randbytes)
    b = EnvelopeCodec("bbbb", Keyring(KEY_A), nonce_source=_nonces().randbytes)
    data = a.seal(MessageType.PUSH, b"payload")
    relabelled = data.replace(b"aaaa", b"bbbb", 1)
    with pytest.raises(EnvelopeError) as caught:
        b.open(relabelled)
    assert caught.value.reason == "decrypt-failed"


def test_plaintext_refused_when_encryption_required() -> None:
    secure = EnvelopeCodec("prod", Keyring(KEY_A), nonce_source=_nonces().randbytes)
    with pytest.raises(EnvelopeError) as caught:
        secure.open(EnvelopeCodec("prod").seal(MessageType.PUSH, b"x"))
    assert caught.value.reason == "unauthenticated"
    plain = EnvelopeCodec("prod")
    with pytest.raises(EnvelopeError) as caught:
        plain.open(secure.seal(MessageType.PUSH, b"x"))
    assert caught.value.reason == "unauthenticated"


def test_key_rotation_without_downtime() -> None:
    old = Keyring(KEY_A)
    new = Keyring(KEY_A)
    a = EnvelopeCodec("prod", old, nonce_source=_nonces(1).randbytes)
    b = EnvelopeCodec("prod", new, nonce_source=_nonces(2).randbytes)
    # 1. install the new key everywhere: both still speak KEY_A
    old.install(KEY_C)
    new.install(KEY_C)
    assert b.open(a.seal(MessageType.ACK, b"1"))[1] == b"1"
    # 2. b switches first: a still decrypts (KEY_C installed), and b still reads a
    new.use(KEY_C)
    assert new.primary == KEY_C
    assert a.open(b.seal(MessageType.ACK, b"2"))[1] == b"2"
    assert b.open(a.seal(MessageType.ACK, b"3"))[1] == b"3"
    # 3. a switches, then both remove KEY_A: traffic still flows
    old.use(KEY_C)
    old.remove(KEY_A)
    new.remove(KEY_A)
    assert b.open(a.seal(MessageType.ACK, b"4"))[1] == b"4"
    # a packet sealed with the removed key is now refused
    legacy = EnvelopeCodec("prod", Keyring(KEY_A), nonce_source=_nonces(3).randbytes)
    with pytest.raises(EnvelopeError):
        b.open(legacy.seal(MessageType.ACK, b"5"))


def test_keyring_rules() -> None:
    ring = Keyring(KEY_A)
    with pytest.raises(ValueError):
        ring.remove(KEY_A)
    with pytest.raises(ValueError):
        ring.use(KEY_B)
    with pytest.raises(ValueError):
        ring.install(b"short")
    ring.install(KEY_B)
    assert ring.keys == [KEY_A, KEY_B]
    with pytest.raises(ValueError):
        EnvelopeCodec("x" * 65)
    with pytest.raises(ValueError):
        EnvelopeCodec("prod", Keyring(KEY_A))  # no nonce source


def test_garbage_never_escapes_as_another_exception() -> None:
    codec = EnvelopeCodec("prod", Keyring(KEY_A), nonce_source=_nonces().randbytes)
    rng = random.Random(11)
    valid = codec.seal(MessageType.PUSH, b"hello")
    refused = 0
    for _ in range(500):
        junk = bytearray(valid[: rng.randrange(len(valid))])
        for _ in range(rng.randrange(4)):
            if junk:
                junk[rng.randrange(len(junk))] = rng.randrange(256)
        try:
            codec.open(bytes(junk))
        except EnvelopeError:
            refused += 1
    assert refused == 500  # every truncated packet fails authentication, none raises otherwise
