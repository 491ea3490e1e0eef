"""Ollama and OpenAI-compatible wire protocols, against a scripted loopback HTTP server.

No Ollama binary exists in the package registries this project may use, so Ollama's
documented NDJSON stream (docs and 0.12.11 release notes: a `logprobs` array of
{token, logprob, bytes, top_logprobs} per line) is played by `loopback_http.LoopbackServer`.
The OpenAI side runs against a real llama.cpp server in test_openai_llamacpp.py; here the
same server script plays the faults a real server will not produce on demand.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading

import pytest

from gearterm.backends.base import BackendError, GenerationParams, Notice, ReplyDone, TokenEvent
from gearterm.backends.ollama import OllamaBackend
from gearterm.backends.openai_compat import OpenAIBackend
from gearterm.backends.topk_entropy import entropy_bounds
from gearterm.kernels.gear import Gear
from loopback_http import Hold, LoopbackServer, Reply, closed_port_url

VOCAB = 64
FAMILY = ["tiny:1b-q4_K_M", "tiny:1b-q8_0", "tiny:1b-fp16", "other:latest"]


def entry(token: str, logprob: float, alternatives=None) -> dict:
    alts = alternatives if alternatives is not None else [(token, logprob), ("~", math.log(max(1e-9, 1 - math.exp(logprob)) / 2))]
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alts],
    }


class OllamaWire:
    name = "ollama"
    backend_class = OllamaBackend
    chat_path = "/api/chat"
    content_type = "application/x-ndjson"

    def __init__(self, server: LoopbackServer, version: str = "0.13.0"):
        server.routes[("GET", "/api/tags")] = lambda _: Reply.json({"models": [{"name": n, "model": n} for n in FAMILY]})
        server.routes[("GET", "/api/version")] = lambda _: Reply.json({"version": version})
        server.routes[("POST", "/api/show")] = lambda _: Reply.json({"model_info": {"llama.vocab_size": VOCAB}})

    def line(self, content: str, entries=None) -> bytes:
        rec = {"model": "m", "created_at": "2026-11-22T00:00:00Z", "message": {"role": "assistant", "content": content}, "done": False}
        if entries is not None:
            rec["logprobs"] = entries
        return json.dumps(rec).encode() + b"\n"

    def done(self, reason: str = "stop") -> list[bytes]:
        rec = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": reason,
               "eval_count": 7, "prompt_eval_count": 12}  # fmt: skip
        return [json.dumps(rec).encode() + b"\n"]

    def error_line(self, message: str) -> bytes:
        return json.dumps({"error": message}).encode() + b"\n"

    def malformed(self) -> bytes:
        return b'{"model": "m", "message": {"content": "x"\n'

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply.json({"error": message}, status)


class OpenAIWire:
    name = "openai"
    backend_class = OpenAIBackend
    chat_path = "/v1/chat/completions"
    content_type = "text/event-stream"

    def __init__(self, server: LoopbackServer):
        models = [{"id": n, "object": "model", "meta": {"n_vocab": VOCAB}} for n in FAMILY]
        server.routes[("GET", "/v1/models")] = lambda _: Reply.json({"object": "list", "data": models})

    def line(self, content: str, entries=None) -> bytes:
        choice = {"index": 0, "delta": {"content": content}, "finish_reason": None}
        if entries is not None:
            choice["logprobs"] = {"content": entries}
        return b"data: " + json.dumps({"object": "chat.completion.chunk", "choices": [choice]}).encode() + b"\n\n"

    def done(self, reason: str = "stop") -> list[bytes]:
        usage = {"completion_tokens": 7, "prompt_tokens": 12, "total_tokens": 19}
        final = {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}], "usage": usage}
        return [b"data: " + json.dumps(final).encode() + b"\n\n", b"data: [DONE]\n\n"]

    def error_line(self, message: str) -> bytes:
        return b"data: " + json.dumps({"error": {"message": message, "type": "server_error"}}).encode() + b"\n\n"

    def malformed(self) -> bytes:
        return b'data: {"choices": [{"delta": \n\n'

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply.json({"error": {"code": status, "message": message, "type": "invalid_request_error"}}, status)


WIRES = [OllamaWire, OpenAIWire]


@pytest.fixture
def server():
    s = LoopbackServer()
    yield s
    s.stop()


def make(wire_class, server, model="tiny:1b-q8_0", **options):
    wire = wire_class(server)
    backend = wire.backend_class(model, server.url, read_timeout_s=options.pop("read_timeout_s", 5.0), **options)
    backend.load()
    return wire, backend


def script(server, wire, *steps, **reply):
    server.routes[("POST", wire.chat_path)] = lambda body: Reply(steps=list(steps), content_type=wire.content_type, **reply)


def chat_requests(server, wire) -> list:
    """The chat requests the server took (Ollama's backend also asks /api/ps after a reply)."""
    return [r for r in server.requests if r[1] == wire.chat_path]


def good_reply(wire) -> list[bytes]:
    return [wire.line("Hi", [entry("Hi", math.log(0.9))]), wire.line(" there", [entry(" there", math.log(0.6))]), *wire.done()]


async def collect(backend, messages=None, params=None, on_token=None):
    events = []
    async for event in backend.stream(messages or [{"role": "user", "content": "hello"}], params or GenerationParams()):
        events.append(event)
        if on_token and isinstance(event, TokenEvent):
            on_token(event)
    return events


def tokens(events):
    return [e for e in events if isinstance(e, TokenEvent)]


def errors(events) -> list[str]:
    """The reply's error messages: said once, in its ReplyDone, never again as an error Notice."""
    assert not [e for e in events if isinstance(e, Notice) and e.level == "error"]
    return [e.error for e in events if isinstance(e, ReplyDone) and e.error]


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_reply_with_bounds_multi_token_lines_and_held_text(server, wire_class):
    wire, backend = make(wire_class, server)
    e1 = entry("Once", math.log(0.5), [("Once", math.log(0.5)), ("One", math.log(0.25))])
    e2, e3 = entry(" upon", math.log(0.9)), entry(" a", math.log(0.8))
    e4, e5 = entry(" ti", math.log(0.7)), entry("me", math.log(0.95))
    script(
        server,
        wire,
        wire.line("Once", [e1]),
        wire.line(" upon a", [e2, e3]),  # one line, two tokens
        wire.line("", [e4]),  # logprobs with empty content: text held back by the server
        wire.line(" time", [e5]),  # ... and sent with the next token
        *wire.done(),
    )
    events = await collect(backend)
    toks = tokens(events)
    assert [t.text for t in toks] == ["Once", " upon", " a", "", " time"]
    assert "".join(t.text for t in toks) == "Once upon a time"
    first = toks[0]
    assert first.entropy_bits_lower == pytest.approx(1.5)  # p = .5, .25; r = .25
    assert first.missing_mass == pytest.approx(0.25)
    assert first.entropy_bits_upper == pytest.approx(1.5 + 0.25 * math.log2(VOCAB - 2))
    for t, e in zip(toks, [e1, e2, e3, e4, e5]):
        expected = entropy_bounds([a["logprob"] for a in e["top_logprobs"]], VOCAB)
        assert t.entropy_bits_lower == pytest.approx(expected.lower_bits)
        assert t.entropy_source == "lower" and t.driving_entropy == t.entropy_bits_lower
        assert t.gear == Gear.MID  # tiny:1b-q8_0 is the mid gear's variant
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.reason == "stop" and done.tokens == 5
    assert done.stats["partial"] is False and done.stats["tokens_with_bounds"] == 5
    assert done.positions == 12 + 7  # the server's count of the prompt's tokens and the reply's
    _, path, body = chat_requests(server, wire)[-1]
    assert path == wire.chat_path and body["model"] == "tiny:1b-q8_0"
    assert body["stream"] is True and body["logprobs"] is True and body["top_logprobs"] == 20


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_next_turn_is_routed_by_the_conversations_entropy(server, wire_class):
    wire, backend = make(wire_class, server)
    assert backend.router.gear_models == {Gear.LOW: "tiny:1b-q4_K_M", Gear.MID: "tiny:1b-q8_0", Gear.HIGH: "tiny:1b-fp16"}
    certain = [wire.line("a", [entry("a", math.log(0.999))]) for _ in range(12)]
    script(server, wire, *certain, *wire.done())
    first = await collect(backend)
    assert {t.gear for t in tokens(first)} == {Gear.MID}
    assert tokens(first)[-1].next_gear == Gear.LOW
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "a" * 12}, {"role": "user", "content": "more"}]
    second = await collect(backend, history)
    assert chat_requests(server, wire)[-1][2]["model"] == "tiny:1b-q4_K_M"
    assert {t.gear for t in tokens(second)} == {Gear.LOW}
    assert any(isinstance(e, Notice) and "tiny:1b-q4_K_M" in e.text for e in second)
    await collect(backend)  # a new conversation starts over from the chosen model
    assert chat_requests(server, wire)[-1][2]["model"] == "tiny:1b-q8_0"


async def test_old_ollama_without_logprobs_is_said_not_invented(server):
    wire = OllamaWire(server, version="0.12.6")
    backend = OllamaBackend("tiny:1b-q8_0", server.url)
    backend.load()
    script(server, wire, wire.line("Hi"), wire.line(" there"), *wire.done())
    events = await collect(backend)
    notices = [e for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert len(notices) == 1 and "0.12.6" in notices[0].text and "0.12.11" in notices[0].text
    toks = tokens(events)
    assert [t.text for t in toks] == ["Hi", " there"]
    for t in toks:
        assert t.entropy_bits is None and t.entropy_bits_lower is None and t.entropy_bits_upper is None
        assert t.missing_mass is None and t.entropy_source is None and t.driving_entropy is None
    assert events[-1].reason == "stop" and events[-1].stats["logprobs"] is False


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_speculative_draft_tokens_are_flagged_without_bounds(server, wire_class):
    wire, backend = make(wire_class, server)
    drafted = {"token": " b", "logprob": 0.0, "bytes": [32, 98], "top_logprobs": []}
    script(server, wire, wire.line("a", [entry("a", math.log(0.5))]), wire.line(" b", [drafted]), *wire.done())
    toks = tokens(await collect(backend))
    assert toks[1].flags == ("speculative",)
    assert toks[1].entropy_bits_lower is None and toks[1].entropy_bits_upper is None and toks[1].entropy_source is None
    assert toks[0].flags == () and toks[0].entropy_bits_lower is not None


def cut_after_two(wire):
    return [wire.line("Hi", [entry("Hi", -0.1)]), wire.line(" there", [entry(" there", -0.2)])]


FAULTS = {
    "closes mid-stream": (lambda w: dict(steps=cut_after_two(w), drop=True), "broke mid-reply", 2),
    "closes without finishing": (lambda w: dict(steps=cut_after_two(w), framing="close"), "closed the stream before", 2),
    "malformed line": (lambda w: dict(steps=[*cut_after_two(w), w.malformed(), *w.done()]), "malformed", 2),
    "truncated last line": (lambda w: dict(steps=[*cut_after_two(w), w.line("x", [entry("x", -1.0)])[:25]]), "malformed", 2),
    "error mid-stream": (lambda w: dict(steps=[*cut_after_two(w), w.error_line("GPU fell off")]), "GPU fell off", 2),
    "HTTP 500": (lambda w: w.error_reply(500, "out of memory").__dict__, "HTTP 500: out of memory", 0),
    "HTTP 400": (lambda w: w.error_reply(400, "top_logprobs must be <= 20").__dict__, "HTTP 400: top_logprobs", 0),
    "model not found": (lambda w: w.error_reply(404, 'model "tiny:1b-q8_0" not found, try pulling it first').__dict__,
                        "model 'tiny:1b-q8_0' not found", 0),
    "read timeout": (lambda w: dict(steps=[*cut_after_two(w), 3.0, *w.done()]), "sent nothing for 0.5 s", 2),
}


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_ends_the_reply_with_a_message_and_keeps_the_partial_reply(server, wire_class, fault):
    wire, backend = make(wire_class, server, read_timeout_s=0.5)
    reply_kwargs, message, kept = FAULTS[fault]
    kwargs = reply_kwargs(wire)
    server.routes[("POST", wire.chat_path)] = lambda body: Reply(**{"content_type": wire.content_type, **kwargs})
    events = await collect(backend)
    assert [t.text for t in tokens(events)] == ["Hi", " there"][:kept]
    (error,) = errors(events)
    assert message in error
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.reason == "error" and message in done.error
    assert done.tokens == kept and done.stats["partial"] is True
    # The backend is fine for the next turn.
    script(server, wire, *good_reply(wire))
    again = await collect(backend)
    assert "".join(t.text for t in tokens(again)) == "Hi there" and again[-1].reason == "stop"


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_connection_refused(server, wire_class):
    wire, backend = make(wire_class, server)
    backend.url = closed_port_url()  # the server went away after load
    events = await collect(backend)
    (error,) = errors(events)
    assert "cannot connect" in error and backend.url in error
    assert events[-1].reason == "error" and events[-1].tokens == 0
    with pytest.raises(BackendError, match="cannot connect"):
        wire_class.backend_class("tiny:1b-q8_0", closed_port_url()).load()


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_cancel_from_another_thread_ends_a_silent_stream_at_once(server, wire_class):
    wire, backend = make(wire_class, server)
    hold = Hold()
    script(server, wire, *cut_after_two(wire), hold, *wire.done())
    loop = asyncio.get_running_loop()

    def on_token(t):
        if t.text == " there":
            threading.Thread(target=backend.cancel).start()

    try:
        start = loop.time()
        events = await collect(backend, on_token=on_token)
        elapsed = loop.time() - start
    finally:
        hold.release.set()
    assert [t.text for t in tokens(events)] == ["Hi", " there"]
    assert not errors(events)
    done = events[-1]
    assert done.reason == "cancelled" and done.stats["partial"] is True and done.tokens == 2
    assert elapsed < 3.0  # the server never sent another byte; the read timeout is 5 s
    script(server, wire, *good_reply(wire))
    assert (await collect(backend))[-1].reason == "stop"


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_cancel_before_the_server_answers(server, wire_class):
    """A server can sit on a request for minutes (Ollama loads the model first)."""
    wire, backend = make(wire_class, server)
    hold = Hold()
    server.routes[("POST", wire.chat_path)] = lambda body: Reply(
        steps=good_reply(wire), content_type=wire.content_type, hold_headers=hold
    )
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, threading.Thread(target=backend.cancel).start)
    try:
        start = loop.time()
        events = await collect(backend)
        elapsed = loop.time() - start
    finally:
        hold.release.set()
    assert events[-1].reason == "cancelled" and events[-1].tokens == 0 and not errors(events)
    assert elapsed < 3.0  # the read timeout is 5 s
    script(server, wire, *good_reply(wire))
    assert (await collect(backend))[-1].reason == "stop"


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_only_the_configured_url_is_contacted(server, wire_class, monkeypatch):
    elsewhere = LoopbackServer()
    try:
        # Proxy variables must not reroute requests: they point at a closed port.
        monkeypatch.setenv("HTTP_PROXY", closed_port_url())
        monkeypatch.setenv("ALL_PROXY", closed_port_url())
        wire, backend = make(wire_class, server)
        server.routes[("POST", wire.chat_path)] = lambda body: Reply(
            status=307, headers={"Location": elsewhere.url + wire.chat_path}, framing="length"
        )
        events = await collect(backend)
        assert "not followed" in errors(events)[0]
        assert elsewhere.requests == []
        assert all(path.startswith("/api/") or path.startswith("/v1/") for path in server.paths())
    finally:
        elsewhere.stop()


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
def test_load_reports_a_missing_model_with_what_is_there(server, wire_class):
    wire_class(server)
    with pytest.raises(BackendError, match="'nope' not found.*tiny:1b-q4_K_M"):
        wire_class.backend_class("nope", server.url).load()


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
def test_no_model_named_is_refused_where_the_server_lists_several_with_what_is_there(server, wire_class):
    wire_class(server)
    with pytest.raises(BackendError, match="needs a model name .*lists tiny:1b-q4_K_M, tiny:1b-q8_0"):
        wire_class.backend_class("", server.url).load()


def test_ollama_names_without_a_tag_mean_latest(server):
    OllamaWire(server)
    backend = OllamaBackend("other", server.url)
    backend.load()
    assert backend.model_name == "other:latest"
    assert backend.capabilities.vocab_size == VOCAB and backend.capabilities.entropy == "topk"


def test_openai_url_may_include_v1(server):
    OpenAIWire(server)
    backend = OpenAIBackend("tiny:1b-fp16", server.url + "/v1/")
    backend.load()
    assert backend.url == server.url and backend.router.start == Gear.HIGH


CONTINUED = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi"}]


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_a_reply_is_continued_from_a_trailing_assistant_message(server, wire_class):
    wire, backend = make(wire_class, server)
    script(server, wire, wire.line(" there", [entry(" there", math.log(0.6))]), *wire.done())
    events = await collect(backend, CONTINUED)
    assert "".join(t.text for t in tokens(events)) == " there"  # only the new text: the app adds it to the old
    body = chat_requests(server, wire)[-1][2]
    assert body["messages"] == CONTINUED
    warned = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    if wire_class is OpenAIWire:  # vLLM's and SGLang's request fields; this server does not say whose it is
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
        assert warned == [
            f"the OpenAI-compatible server at {server.url} is not one known to continue a reply "
            "(llama.cpp, vLLM, SGLang are): it may start a new answer, which is added to the reply all the same"
        ]
    else:
        assert warned == [] and "continue_final_message" not in body
    await collect(backend)  # a new reply asks for nothing of the kind
    assert "continue_final_message" not in chat_requests(server, wire)[-1][2]


def test_an_openai_server_that_says_it_is_llama_cpp_continues_without_a_warning(server):
    models = [{"id": "m", "object": "model", "owned_by": "llamacpp", "meta": {"n_vocab": VOCAB}}]
    server.routes[("GET", "/v1/models")] = lambda _: Reply.json({"object": "list", "data": models})
    backend = OpenAIBackend("m", server.url)
    backend.load()
    assert backend.continue_notice() is None


@pytest.mark.parametrize("wire_class", WIRES, ids=lambda w: w.name)
async def test_a_server_that_does_not_count_the_prompt_leaves_the_positions_unknown(server, wire_class):
    """Ollama before #5371 sent no prompt_eval_count for a cached prompt; a server may send no usage."""
    wire, backend = make(wire_class, server)
    end = [line.replace(b', "prompt_eval_count": 12', b"").replace(b', "total_tokens": 19', b"") for line in wire.done()]
    script(server, wire, wire.line("Hi", [entry("Hi", math.log(0.9))]), *end)
    done = (await collect(backend))[-1]
    assert isinstance(done, ReplyDone) and done.tokens == 1 and done.positions is None


async def test_ollama_says_the_context_of_the_loaded_model_and_a_nearly_full_conversation_is_told_once(server):
    """/api/ps lists a loaded model's context_length (as `ollama ps` shows it); the stand-in plays
    a 20-position context, which a prompt of 12 and a reply of 7 tokens nearly fill."""
    wire, backend = make(OllamaWire, server)
    assert backend.max_positions is None  # not loaded by Ollama yet: not known
    running = [{"name": "tiny:1b-q8_0", "model": "tiny:1b-q8_0", "size_vram": 1, "context_length": 20}]
    server.routes[("GET", "/api/ps")] = lambda _: Reply.json({"models": running})
    said = []
    for messages in (None, [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi"},
                            {"role": "user", "content": "and?"}], None):  # fmt: skip
        script(server, wire, *good_reply(wire))
        events = await collect(backend, messages)
        said.append([e.text for e in events if isinstance(e, Notice) and "positions" in e.text])
        assert backend.max_positions == 20 and events[-1].positions == 19
    full = (
        "this conversation fills 19 of the 20 positions Ollama holds for tiny:1b-q8_0: past them Ollama drops the "
        "oldest part of the prompt without saying so (OLLAMA_CONTEXT_LENGTH raises it)"
    )
    assert said == [[full], [], [full]]  # once a conversation: the third reply starts a new one


async def test_an_ollama_that_does_not_list_the_context_leaves_it_unknown_and_says_nothing(server):
    wire, backend = make(OllamaWire, server)
    server.routes[("GET", "/api/ps")] = lambda _: Reply.json({"models": [{"name": "tiny:1b-q8_0", "size_vram": 1}]})
    script(server, wire, *good_reply(wire))
    events = await collect(backend)
    assert backend.max_positions is None and events[-1].reason == "stop"
    assert not [e for e in events if isinstance(e, Notice) and "positions" in e.text]
