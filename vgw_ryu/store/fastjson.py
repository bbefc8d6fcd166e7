"""JSON-RPC parsing for the ``ovs`` library at C speed, without its C extension.

The ``ovs`` Python package parses OVSDB's JSON-RPC stream character by character in
Python unless it was built against libopenvswitch (``ovs._json``), which Debian does
not ship. A 1,000-VM policy arrives as a few hundred kilobytes of updates, and the
pure-Python parser spends most of a whole-state write and of a replica's catch-up on
it. ``install()`` gives ``ovs.json.Parser`` the same streaming contract backed by the
standard library's C decoder: ``feed(text)`` returns how much of ``text`` belongs to the
current value, ``is_done()`` says when one is complete, ``finish()`` returns it (or an
error string, as the original does). Nothing changes when the C extension is present.
No Ryu here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import ovs.json

_DECODER = json.JSONDecoder()
_ORIGINAL = ovs.json.Parser


# Outside strings only brackets and quotes matter; a string is skipped whole by one
# C-level match (the unrolled form of "any non-quote, or an escaped character").
_STRUCT = re.compile(r'["{}\[\]]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)


class StreamParser:
    """One JSON value out of a stream of text chunks (``ovs.json.Parser``'s contract).

    Brackets are counted outside strings to find where an object or array ends, then
    the standard library decodes it in one call; a scalar alone (``from_string``) is
    decoded by ``finish()``.
    """

    def __init__(self, check_trailer: bool = False):
        self.check_trailer = check_trailer
        self._buf = ""
        self._pos = 0          # scanned up to here (never inside a string)
        self._depth = 0
        self._start: int | None = None
        self._value: Any = None
        self._error: str | None = None
        self.done = False

    def feed(self, s: str) -> int:
        """Take text; the number of characters of ``s`` used (the rest is the next
        value's)."""
        if self.done or not s:
            return 0
        before = len(self._buf)
        buf = self._buf = self._buf + s
        if self._start is None:
            stripped = buf.lstrip()
            if not stripped or stripped[0] not in "{[":
                return len(s)   # empty so far, or a bare scalar: finish() decodes it
            self._start = self._pos = len(buf) - len(stripped)
        i, depth = self._pos, self._depth
        while True:
            m = _STRUCT.search(buf, i)
            if m is None:
                i = len(buf)
                break
            j = m.start()
            c = buf[j]
            if c == '"':
                e = _STRING_REST.match(buf, j + 1)
                if e is None:
                    i = j       # the string goes on in the next chunk: rescan it then
                    break
                i = e.end()
                continue
            depth += 1 if c in "{[" else -1
            i = j + 1
            if depth == 0:
                self._complete(buf, i)
                return i - before
        self._pos, self._depth = i, depth
        return len(s)

    def _complete(self, buf: str, end: int) -> None:
        self.done = True
        try:
            self._value, used = _DECODER.raw_decode(buf[:end], self._start)
        except json.JSONDecodeError as e:
            self._error = f"line {e.lineno}, column {e.colno}: {e.msg}"
            return
        if used != end:
            self._error = f"unexpected text after the value at byte {used}"
        elif self.check_trailer and buf[end:].strip():
            self._error = "trailing garbage at end of input"

    def is_done(self) -> bool:
        return self.done

    def finish(self) -> Any:
        """The value, or an error message (a str), as ``ovs.json.Parser.finish``."""
        if self.done:
            return self._value if self._error is None else self._error
        text = self._buf.strip()
        if not text:
            return "line 0, column 0, byte 0: empty input stream"
        try:
            value, end = _DECODER.raw_decode(text)
        except json.JSONDecodeError as e:
            return f"line {e.lineno}, column {e.colno}: {e.msg}"
        if text[end:].strip():
            return "trailing garbage at end of input"
        return value


def install() -> bool:
    """Use StreamParser for the ``ovs`` library's JSON-RPC, unless its C parser is
    there; True if installed (idempotent)."""
    if ovs.json.PARSER == ovs.json.PARSER_C:
        return False
    ovs.json.Parser = StreamParser
    return True
