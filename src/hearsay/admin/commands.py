"""The admin commands: ``members``, ``info``, ``join``, ``leave``, ``keys`` and ``monitor``.

Each sends the node the RESP command an operator would type into redis-cli and prints the
reply as a table (or as JSON with ``--json``). The node's replies are not changed for the
CLI's sake: HEARSAY.MEMBERS rows carry no labels, so the labels are added here, in the order
docs/commands.md gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TextIO

from hearsay.admin.connection import AdminError, Exit, Target, send, talking_to
from hearsay.admin.table import render, text

if TYPE_CHECKING:
    import redis

MEMBER_FIELDS: Final = ("name", "address", "state", "phi", "generation")
"""The columns of a HEARSAY.MEMBERS row, in the reply's order."""
SCAN_COUNT: Final = 1000
"""Keys a SCAN call examines: the node caps it at 10,000, and each batch is one round trip."""
TYPE_WIDTH: Final = 10
"""The widest TYPE reply (``CMSk-TYPE``) and a space: ``keys`` streams its rows, so the
column cannot be sized from them."""


def members(target: Target, as_json: bool, out: TextIO) -> None:
    """Every member the node knows, self included."""
    client = target.client()
    with talking_to(target), client:
        rows = send(client, "HEARSAY.MEMBERS")
    labelled = [dict(zip(MEMBER_FIELDS, row, strict=True)) for row in rows]
    if as_json:
        records = [
            {
                "name": text(m["name"]),
                "address": text(m["address"]),
                "state": text(m["state"]),
                "phi": float(m["phi"]),
                "generation": int(m["generation"]),
            }
            for m in labelled
        ]
        json.dump(records, out, indent=2)
        out.write("\n")
        return
    header = [field.upper() for field in MEMBER_FIELDS]
    out.write(render(header, [[text(m[f]) for f in MEMBER_FIELDS] for m in labelled]) + "\n")


def parse_info(raw: str) -> dict[str, dict[str, Any]]:
    """INFO's text as ``{section: {field: value}}`` (section names lower case; integers and
    decimals as numbers, everything else as the text the node sent)."""
    sections: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = sections.setdefault("", {})
    for line in raw.splitlines():
        if line.startswith("#"):
            current = sections.setdefault(line.lstrip("# ").strip().lower(), {})
            continue
        field, colon, value = line.partition(":")
        if colon:
            current[field] = _number_or_text(value)
    if not sections[""]:
        del sections[""]
    return sections


def _number_or_text(value: str) -> int | float | str:
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def info(target: Target, section: str | None, as_json: bool, out: TextIO) -> None:
    """INFO (every section, or one), one field a line under each section's name."""
    client = target.client()
    client.set_response_callback("INFO", lambda response, **_: response)  # the raw text
    with talking_to(target), client:
        raw = send(client, "INFO", *([section] if section else []))
    sections = parse_info(text(raw))
    if not sections and section:  # Redis answers an unknown section with nothing
        raise AdminError(f"{target.address} has no INFO section {section!r}", Exit.REFUSED)
    if as_json:
        json.dump(sections, out, indent=2)
        out.write("\n")
        return
    blocks = [
        f"# {name}\n" + render(["FIELD", "VALUE"], [[k, str(v)] for k, v in fields.items()])
        for name, fields in sections.items()
    ]
    out.write("\n\n".join(blocks) + "\n")


def join(target: Target, peer: str, as_json: bool, out: TextIO) -> None:
    """Asks the node to contact a peer (HEARSAY.JOIN HOST:PORT)."""
    _simple(target, as_json, out, lambda c: send(c, "HEARSAY.JOIN", peer))


def leave(target: Target, as_json: bool, out: TextIO) -> None:
    """Asks the node to announce that it leaves the cluster (HEARSAY.LEAVE)."""
    _simple(target, as_json, out, lambda c: send(c, "HEARSAY.LEAVE"))


def force_leave(target: Target, name: str, as_json: bool, out: TextIO) -> None:
    """Asks the node to mark a failed member left everywhere (HEARSAY.FORCELEAVE NAME)."""
    _simple(target, as_json, out, lambda c: send(c, "HEARSAY.FORCELEAVE", name))


def _simple(
    target: Target, as_json: bool, out: TextIO, ask: Callable[[redis.Redis], object]
) -> None:
    """Commands that answer OK: prints it (or the reply, should it be another)."""
    client = target.client()
    with talking_to(target), client:
        reply = ask(client)
    said = "OK" if reply is True else text(reply)  # type: ignore[arg-type]
    out.write(json.dumps({"ok": said == "OK", "reply": said}) + "\n" if as_json else said + "\n")


def keys(target: Target, pattern: str | None, as_json: bool, out: TextIO) -> int:
    """Every key (matching ``pattern``) with its type, by SCAN (never KEYS, which would hold
    the node for the whole keyspace at once). Rows are printed as each batch arrives, so the
    memory used is one batch whatever the keyspace; returns how many keys were printed."""
    client = target.client()
    printed = 0
    out.write("[" if as_json else "TYPE".ljust(TYPE_WIDTH) + "KEY\n")
    with talking_to(target), client:
        cursor: int | None = None
        while cursor != 0:  # SCAN returns 0 once it has visited every key
            cursor, batch = client.scan(cursor or 0, match=pattern, count=SCAN_COUNT)
            if not batch:
                continue
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.type(key)
            for key, kind in zip(batch, pipe.execute(), strict=True):
                if kind == b"none":  # deleted since SCAN saw it
                    continue
                if as_json:
                    row = {"key": text(key), "type": text(kind)}
                    out.write(("," if printed else "") + "\n  " + json.dumps(row))
                else:
                    out.write(text(kind).ljust(TYPE_WIDTH) + text(key) + "\n")
                printed += 1
    if as_json:
        out.write("\n]\n" if printed else "]\n")
    return printed


def monitor(target: Target, as_json: bool, out: TextIO) -> int:
    """Streams every command the node runs (MONITOR), one line each as redis-cli prints them
    (or a JSON object a line), until Ctrl-C, which ends it cleanly; returns how many lines.

    The node drops a monitor that reads too slowly, so a stalled terminal costs it nothing.
    """
    client = target.client(read_timeout_s=None)  # a quiet node sends nothing for a long time
    shown = 0
    with talking_to(target), client, client.monitor() as stream:
        try:
            while True:  # until Ctrl-C, or the node closes the connection (an error)
                if as_json:
                    out.write(json.dumps(stream.next_command()) + "\n")
                else:
                    out.write(text(stream.connection.read_response()) + "\n")
                out.flush()
                shown += 1
        except KeyboardInterrupt:
            pass
    return shown
