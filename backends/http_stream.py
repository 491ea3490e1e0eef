"""Incremental parsers for streamed HTTP bodies: NDJSON (Ollama) and server-sent events (OpenAI).

Bytes arrive in chunks split anywhere, even inside a UTF-8 character or between the
\\r and \\n of a line ending. Each decoder keeps the unfinished tail and returns only
what is complete; finish() reports what was left when the body ended.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class MalformedLine:
    """A line that is not valid JSON (or not a JSON object): a fault the stream reports."""

    raw: bytes
    error: str


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: the `event:` name ("message" when absent) and its joined data."""

    data: str
    event: str = "message"


class LineSplitter:
    """Splits bytes into lines at \\n, \\r\\n or \\r, whatever the chunk boundaries."""

    def __init__(self) -> None:
        self._tail = bytearray()
        self._skip_lf = False  # the last chunk ended in \r: a leading \n belongs to it

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        data = bytes(self._tail) + chunk
        lines = []
        start = 0
        for end in _LINE_END.finditer(data):
            lines.append(data[start : end.start()])
            start = end.end()
        # A final \r may be the first half of a \r\n split across chunks.
        self._skip_lf = data.endswith(b"\r")
        self._tail = bytearray(data[start:])
        return lines

    def finish(self) -> bytes:
        """The bytes after the last line ending: a line cut off when the body ended."""
        tail, self._tail = bytes(self._tail), bytearray()
        return tail


class NDJSONDecoder:
    """One JSON object per line; blank lines are keep-alives and skipped."""

    def __init__(self) -> None:
        self._lines = LineSplitter()

    def feed(self, chunk: bytes) -> list[dict | MalformedLine]:
        return [parsed for line in self._lines.feed(chunk) if (parsed := _parse_json_line(line)) is not None]

    def finish(self) -> list[dict | MalformedLine]:
        """A complete object left without its newline is kept; anything else is malformed."""
        parsed = _parse_json_line(self._lines.finish())
        return [] if parsed is None else [parsed]


def _parse_json_line(line: bytes) -> dict | MalformedLine | None:
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both
        return MalformedLine(line, str(e))
    if not isinstance(obj, dict):
        return MalformedLine(line, f"expected a JSON object, got {type(obj).__name__}")
    return obj


class SSEDecoder:
    """Server-sent events as the HTML standard parses them, plus llama.cpp's `error:` lines.

    llama.cpp reports a failure mid-stream as a line `error: {json}` rather than as a
    `data:` field; it is returned as an event named "error" so the fault is not lost."""

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        events = []
        for raw in self._lines.feed(chunk):
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[ServerEvent]:
        """Events still open when the body ended are dispatched, as browsers do not; a
        server that closes without the blank line has still sent their data."""
        tail = self._lines.finish()
        events = []
        if tail:
            event = self._line(tail.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> ServerEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive pings
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "error":
            return ServerEvent(data=value, event="error")
        return None

    def _dispatch(self) -> ServerEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerEvent(data="\n".join(self._data), event=self._event or "message")
        self._data, self._event = [], ""
        return event
