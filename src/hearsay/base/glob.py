"""Glob matching that never backtracks: Redis's ``stringmatchlen`` rules in O(pattern x key).

KEYS, SCAN MATCH and CLIENT LIST / COMMAND LIST filters take Redis's glob patterns; vignette's
``%`` searches take plain wildcards. Translating a glob with ``n`` stars into one regex
(``.*`` per star) lets the regex engine backtrack over every way of placing the stars:
``*a*a*a*a*a*a*a*a*a*a*b`` against a 40-byte key took 31 s with every client blocked.

Here the pattern is cut at its runs of stars into **segments** that hold no star. Every
segment matches exactly as many bytes as it has atoms (a literal byte, ``?``, a ``[...]``
class), so:

- the first segment must match at the start of the key and the last at its end;
- each segment between stars is placed at its *leftmost* fit after the previous one. Placing
  it further right can never help the rest of the pattern (the rest then has less key to fit
  in), which is why Redis's own matcher stops trying longer matches for earlier stars
  (``skipLongerMatches``) once a later star found none.

Each segment is searched for once, from where the previous one ended, by ``bytes.find`` (all
literal), by a regex made only of single-byte atoms (no repetition, no alternation, so no
backtracking: at most ``len(segment)`` steps per start position), or for long segments by
shift-and (one step per key byte). The work per key is thus at most
``len(pattern) * (len(key) + 1)`` byte comparisons, and far less for long patterns.

Redis's quirks are kept, since KEYS answers must be Redis's: an empty key matches only the
empty pattern (Redis's loop never runs; KEYS and SCAN special-case the lone ``*`` pattern,
which the callers do too), and a pattern with more than 1,000 stars that are followed by
something matches nothing (Redis's guard against deep recursion).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from hearsay.base.errors import BoundsError

__all__ = [
    "PATTERN_BYTES_MAX",
    "STAR_GROUPS_MAX",
    "Glob",
    "compile_glob",
    "compile_wildcards",
    "glob_match",
]

PATTERN_BYTES_MAX: Final = 64 * 1024
"""Longer patterns are refused (BoundsError): compiling costs a few microseconds per pattern
byte, and hearsay keys are at most 64 KiB, so a longer pattern can only be an attack (one of
1.6 MB held the node for seconds). Redis has no such limit; no useful pattern reaches it."""
CACHED_PATTERN_BYTES_MAX: Final = 1024
"""Compiled patterns up to this long are kept (256 of them) for the next KEYS / SCAN call."""
REGEX_ATOMS_MAX: Final = 256
"""Segments with wildcards up to this long are matched by a regex, longer ones by shift-and."""
STAR_GROUPS_MAX: Final = 1000
"""Redis's ``nesting > 1000`` guard: a pattern that needs more inner stars never matches."""
_ALL_BYTES: Final = (1 << 256) - 1
_STAR: Final = ord("*")


@dataclass(frozen=True, slots=True)
class _Class:
    """The bytes a ``?`` or ``[...]`` admits, as a 256-bit mask (bit ``b`` admits byte ``b``)."""

    mask: int


_ANY: Final = _Class(_ALL_BYTES)

Atom = int | _Class
"""One pattern position: a literal byte, or a class of bytes."""


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run of atoms between stars, searched by the cheapest means that cannot blow up:

    - all literal: ``bytes.find`` / ``startswith``;
    - up to :data:`REGEX_ATOMS_MAX` atoms: a regex of single-byte atoms (no repetition, so at
      most ``length`` steps per start position, in C);
    - longer: shift-and (bitap) over the key, one step per key byte whatever the length
      (``length / 64`` machine words a step), where the regex could take ``length`` steps
      per start position: a 30,000-atom segment against a 64 KiB key is ~2e9 regex steps.
    """

    length: int
    literal: bytes | None = None
    regex: re.Pattern[bytes] | None = None
    admits: tuple[int, ...] = ()
    """Shift-and only: per atom, the 256-bit mask of the bytes it admits."""
    columns: tuple[int, ...] = ()
    """Shift-and only: per byte value, the bit mask of the atoms that admit it."""

    @classmethod
    def of(cls, atoms: Sequence[Atom]) -> _Segment:
        if all(isinstance(atom, int) for atom in atoms):
            return cls(len(atoms), literal=bytes(a for a in atoms if isinstance(a, int)))
        if len(atoms) <= REGEX_ATOMS_MAX:
            source = b"".join(_atom_regex(atom) for atom in atoms)
            return cls(len(atoms), regex=re.compile(source, re.DOTALL))
        admits = tuple(1 << atom if isinstance(atom, int) else atom.mask for atom in atoms)
        return cls(len(atoms), admits=admits, columns=_columns(admits))

    def at(self, key: bytes, start: int) -> bool:
        """Whether the segment matches ``key[start : start + length]``."""
        if self.literal is not None:
            return key.startswith(self.literal, start)
        if self.regex is not None:
            return self.regex.match(key, start) is not None
        if start + self.length > len(key):
            return False
        return all(admit >> key[start + i] & 1 for i, admit in enumerate(self.admits))

    def find(self, key: bytes, start: int, end: int) -> int:
        """The leftmost position ``>= start`` where it fits inside ``key[:end]``, or -1."""
        if self.literal is not None:
            return key.find(self.literal, start, end)
        if self.regex is not None:
            found = self.regex.search(key, start, end)
            return -1 if found is None else found.start()
        columns, done, state = self.columns, 1 << (self.length - 1), 0
        for position in range(start, end):
            state = ((state << 1) | 1) & columns[key[position]]
            if state & done:
                return position - self.length + 1
        return -1


def _columns(admits: Sequence[int]) -> tuple[int, ...]:
    """Shift-and's table: for each byte value, bit ``i`` set when atom ``i`` admits it.

    Built with numpy (an atoms x 256 table of booleans, one row per distinct class), not bit
    by bit: a segment of 64 Ki classes of 256 bytes each is 16 M bits.
    """
    distinct = sorted(set(admits))
    rows = np.unpackbits(
        np.frombuffer(b"".join(m.to_bytes(32, "little") for m in distinct), np.uint8),
        bitorder="little",
    ).reshape(len(distinct), 256)
    index = {mask: i for i, mask in enumerate(distinct)}
    table = rows[np.fromiter((index[m] for m in admits), np.intp, len(admits))]
    packed = np.packbits(table.T, axis=1, bitorder="little")
    return tuple(int.from_bytes(row.tobytes(), "little") for row in packed)


def _atom_regex(atom: Atom) -> bytes:
    """One atom as a regex: an escaped byte, or a class (:func:`_class_regex`)."""
    if isinstance(atom, int):
        return b"\\x%02x" % atom
    return _class_regex(atom.mask)


@functools.lru_cache(maxsize=1024)
def _class_regex(mask: int) -> bytes:
    """``.``, or a class of byte *ranges*, negated when that is shorter. (Listing every member
    made ``[^a]`` a class of 255 bytes, and compiling a pattern of 10,000 of them took 13 s;
    ranges keep the compile time linear in the pattern.)"""
    if mask == _ALL_BYTES:
        return b"."
    inside, outside = _ranges(mask), _ranges(mask ^ _ALL_BYTES)
    if len(outside) < len(inside):
        return b"[^" + b"".join(outside) + b"]"
    return b"[" + b"".join(inside) + b"]"


def _ranges(mask: int) -> list[bytes]:
    """The set bits of ``mask`` as regex class items, ``\\xNN`` or ``\\xNN-\\xMM`` per run."""
    items: list[bytes] = []
    byte = 0
    while byte < 256:
        if not mask >> byte & 1:
            byte += 1
            continue
        low = byte
        while byte < 256 and mask >> byte & 1:
            byte += 1
        high = byte - 1
        items.append(b"\\x%02x" % low if low == high else b"\\x%02x-\\x%02x" % (low, high))
    return items


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled pattern: ``segments`` with a run of stars between each two.

    ``len(segments) == 1`` means no star at all. ``never`` marks a pattern that cannot match
    (an empty ``[]`` class, or too many inner stars).
    """

    segments: tuple[_Segment, ...]
    empty: bool
    never: bool

    def match(self, key: bytes) -> bool:
        if not key:
            return self.empty  # Redis: an empty key matches only the empty pattern
        if self.never:
            return False
        segments = self.segments
        head, tail = segments[0], segments[-1]
        if len(segments) == 1:
            return len(key) == head.length and head.at(key, 0)
        tail_start = len(key) - tail.length
        if tail_start < head.length or not head.at(key, 0):
            return False
        position = head.length
        for segment in segments[1:-1]:
            found = segment.find(key, position, tail_start)
            if found < 0:
                return False
            position = found + segment.length
        return tail.at(key, tail_start)


def _redis_atoms(pattern: bytes) -> list[Atom | None]:
    """The pattern as atoms, ``None`` for each star, by ``stringmatchlen``'s parsing rules.

    ``\\x`` is a literal ``x`` (a trailing ``\\`` is itself); ``[`` opens a class that runs to
    the next unescaped ``]`` or to the end of the pattern; inside it ``^`` first negates,
    ``\\x`` is ``x``, and ``a-z`` is a range (either order; ``a-]`` is a range too, as in Redis).
    """
    atoms: list[Atom | None] = []
    i, n = 0, len(pattern)
    while i < n:
        byte = pattern[i]
        if byte == _STAR:
            atoms.append(None)
        elif byte == ord("?"):
            atoms.append(_ANY)
        elif byte == ord("\\"):
            if i + 1 < n:
                i += 1
            atoms.append(pattern[i])
        elif byte == ord("["):
            i, members = _redis_class(pattern, i + 1)
            atoms.append(members)
        else:
            atoms.append(byte)
        i += 1
    return atoms


def _redis_class(pattern: bytes, i: int) -> tuple[int, _Class]:
    """Parse a class from just after ``[``; returns (position of its last byte, members)."""
    n = len(pattern)
    negate = i < n and pattern[i] == ord("^")
    i += negate
    mask = 0
    while True:
        if i < n - 1 and pattern[i] == ord("\\"):
            i += 1
            mask |= 1 << pattern[i]
        elif i < n and pattern[i] == ord("]"):
            break
        elif i >= n:
            i = n - 1  # unterminated: the class ran to the end of the pattern
            break
        elif i + 2 < n and pattern[i + 1] == ord("-"):
            mask |= _range_mask(pattern[i], pattern[i + 2])
            i += 2
        else:
            mask |= 1 << pattern[i]
        i += 1
    return i, _Class(mask ^ _ALL_BYTES if negate else mask)


def _signed(byte: int) -> int:
    """A byte as C's (signed on x86) ``char``: what ``stringmatchlen`` compares in a range."""
    return byte - 256 if byte >= 128 else byte


def _range_mask(first: int, last: int) -> int:
    """The bytes of a class range ``first-last``, as Redis compares them: as signed chars, so
    a range from an ASCII byte to one of 0x80..0xff (``[b-\xff]``: -1..98) covers the bytes
    from 0x80 up to the negative end and from 0 up to the positive one."""
    low, high = sorted((_signed(first), _signed(last)))
    if low >= 0 or high < 0:  # one sign: a contiguous run of byte values
        low, high = low & 0xFF, high & 0xFF
        return (1 << (high + 1)) - (1 << low)
    return ((1 << (high + 1)) - 1) | (_ALL_BYTES ^ ((1 << (low + 256)) - 1))


def _build(atoms: Sequence[Atom | None], *, empty: bool, inner_stars_max: int | None) -> Glob:
    runs: list[list[Atom]] = [[]]
    after_star = False
    for atom in atoms:
        if atom is None:
            if not after_star:  # a run of stars is one star
                runs.append([])
            after_star = True
        else:
            runs[-1].append(atom)
            after_star = False
    inner_stars = len(runs) - 1 - (len(runs) > 1 and not runs[-1])
    never = (inner_stars_max is not None and inner_stars > inner_stars_max) or any(
        isinstance(atom, _Class) and not atom.mask for run in runs for atom in run
    )
    if never:
        return Glob((), empty, never=True)
    return Glob(tuple(_Segment.of(run) for run in runs), empty, never=False)


def compile_glob(pattern: bytes) -> Glob:
    """A Redis glob (``*``, ``?``, ``[...]``, ``\\`` escapes), compiled once (patterns up to
    :data:`CACHED_PATTERN_BYTES_MAX` are cached: a long one's tables would pin megabytes).

    Raises BoundsError for a pattern longer than :data:`PATTERN_BYTES_MAX`.
    """
    if len(pattern) <= CACHED_PATTERN_BYTES_MAX:
        return _compile_cached(pattern)
    if len(pattern) > PATTERN_BYTES_MAX:
        raise BoundsError(
            f"glob pattern of {len(pattern)} bytes is longer than {PATTERN_BYTES_MAX} bytes"
        )
    return _compile(pattern)


@functools.lru_cache(maxsize=256)
def _compile_cached(pattern: bytes) -> Glob:
    return _compile(pattern)


def _compile(pattern: bytes) -> Glob:
    return _build(_redis_atoms(pattern), empty=not pattern, inner_stars_max=STAR_GROUPS_MAX)


def glob_match(pattern: bytes, key: bytes) -> bool:
    """Whether ``key`` matches the Redis glob ``pattern`` (``stringmatchlen`` without nocase)."""
    return compile_glob(pattern).match(key)


def compile_wildcards(pattern: bytes, wildcards: bytes = b"%*") -> Glob:
    """A pattern whose only specials are ``wildcards``, each matching any run of bytes
    (vignette's ``%`` searches). Unlike Redis globs, an empty key matches ``%``."""
    atoms: list[Atom | None] = [None if byte in wildcards else byte for byte in pattern]
    return _build(atoms, empty=all(atom is None for atom in atoms), inner_stars_max=None)
