"""The NDJSON and SSE decoders, fuzzed: any split of any bytes never crashes or loses a line."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gearterm.backends.http_stream import LineSplitter, MalformedLine, NDJSONDecoder, ServerEvent, SSEDecoder


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def feed_all(decoder, chunks):
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out + decoder.finish()


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
json_values = scalars | st.lists(scalars, max_size=3)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
cuts = st.lists(st.integers(min_value=0), max_size=30)


@settings(max_examples=300, deadline=None)
@given(objs=st.lists(objects, max_size=8), cuts=cuts, crlf=st.booleans(), ascii_only=st.booleans())
def test_ndjson_returns_every_object_whatever_the_splits(objs, cuts, crlf, ascii_only):
    end = b"\r\n" if crlf else b"\n"
    body = b"".join(json.dumps(o, ensure_ascii=ascii_only).encode() + end for o in objs)
    assert feed_all(NDJSONDecoder(), split_at(body, cuts)) == objs


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=cuts)
def test_ndjson_never_crashes_on_arbitrary_bytes(data, cuts):
    out = feed_all(NDJSONDecoder(), split_at(data, cuts))
    assert all(isinstance(x, (dict, MalformedLine)) for x in out)
    # Exactly the non-blank lines come back, each parsed or reported.
    lines = [ln for ln in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n") if ln.strip()]
    assert len(out) == len(lines)


@given(obj=objects)
def test_ndjson_reports_a_line_cut_off_at_the_end(obj):
    body = json.dumps(obj).encode() + b"\n" + b'{"trunc'
    out = feed_all(NDJSONDecoder(), [body])
    assert out[0] == obj and isinstance(out[1], MalformedLine)


def test_ndjson_keeps_a_complete_last_object_without_newline():
    assert feed_all(NDJSONDecoder(), [b'{"a": 1}\n{"b"', b": 2}"]) == [{"a": 1}, {"b": 2}]


def test_ndjson_reports_non_objects_and_bad_utf8():
    out = feed_all(NDJSONDecoder(), [b"[1, 2]\n", b'"\xff\xfe"\n', b"\n\n"])
    assert [type(x) for x in out] == [MalformedLine, MalformedLine]


sse_text = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)
sse_events = st.builds(
    lambda lines, name: ServerEvent(data="\n".join(lines), event=name or "message"),
    st.lists(sse_text, min_size=1, max_size=3),
    st.sampled_from(["", "message", "update"]),
)


def serialize(events, ending: bytes, comments: bool) -> bytes:
    out = []
    for e in events:
        if comments:
            out.append(b": ping")
        if e.event != "message":
            out.append(b"event: " + e.event.encode())
        out.extend(b"data: " + line.encode() for line in e.data.split("\n"))
        out.append(b"")
    return b"".join(line + ending for line in out)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(sse_events, max_size=6),
    cuts=cuts,
    ending=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    comments=st.booleans(),
)
def test_sse_returns_every_event_whatever_the_splits(events, cuts, ending, comments):
    assert feed_all(SSEDecoder(), split_at(serialize(events, ending, comments), cuts)) == events


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=cuts)
def test_sse_never_crashes_on_arbitrary_bytes(data, cuts):
    out = feed_all(SSEDecoder(), split_at(data, cuts))
    assert all(isinstance(x, ServerEvent) for x in out)
    # The same events whatever the split: compare with one chunk.
    assert out == feed_all(SSEDecoder(), [data])


def test_sse_data_without_space_and_llama_cpp_error_lines():
    body = b'data:{"a":1}\n\nerror: {"code": 500, "message": "boom"}\n\ndata: [DONE]\n\n'
    assert feed_all(SSEDecoder(), [body]) == [
        ServerEvent('{"a":1}'),
        ServerEvent('{"code": 500, "message": "boom"}', "error"),
        ServerEvent("[DONE]"),
    ]


def test_sse_dispatches_data_left_open_when_the_body_ends():
    assert feed_all(SSEDecoder(), [b"data: [DONE]"]) == [ServerEvent("[DONE]")]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=100), cuts=cuts)
def test_line_splitter_is_split_invariant(data, cuts):
    whole = LineSplitter()
    expected = whole.feed(data) + [whole.finish()]
    splitter = LineSplitter()
    out = [ln for chunk in split_at(data, cuts) for ln in splitter.feed(chunk)]
    assert out + [splitter.finish()] == expected


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=10).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=8),
       crlf=st.booleans(), cuts=cuts)
def test_line_splitter_returns_every_line(lines, crlf, cuts):
    body = b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines)
    splitter = LineSplitter()
    out = [ln for chunk in split_at(body, cuts) for ln in splitter.feed(chunk)]
    assert out == lines and splitter.finish() == b""
