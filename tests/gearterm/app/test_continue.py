"""Continue (ctrl+g): the model goes on with the last reply, and the new text joins that reply,
on screen, in the history (text, token trace, line under it), in the transcript and in the
export, on the pocket model and over HTTP (issue 18)."""

import json
import math

from app_helpers import loaded, make_app, say, wait_for
from loopback_http import LoopbackServer, Reply

from gearterm.app.backend_choices import create_from_entry
from gearterm.backends.base import GenerationParams, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.ollama import OllamaBackend
from gearterm.config import BackendEntry, Config, GenerationConfig, UIConfig

SIZE = (120, 40)
POCKET = BackendEntry(label="pocket", backend="hf")
QUESTION = "Tell me a story of the king and his daughter."  # a greedy reply of 18 tokens


def _pocket_recording_prompts(entry, config):
    """The pocket model as the app loads it, keeping the prompt ids of every reply it is asked for."""
    backend = create_from_entry(entry, config)
    backend.prompts, generate = [], backend._generate
    backend._generate = lambda ids, params: (backend.prompts.append(list(ids)), generate(ids, params))[1]
    return backend


def _stored(app):
    return [(m.role, m.content, m.end_reason) for m in app.history.messages(app.conversation_id)]


def _positions(app, message_id):
    return [t.position for t in app.history.tokens(message_id)]


async def _continue(pilot, app):
    """Press ctrl+g and wait until the last reply has grown and ended."""
    reply = app.chat_screen.chat.replies[-1]
    before = reply.text
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: app.reply is None and reply.text != before, "the continued reply")


async def test_a_continued_reply_is_one_message_that_goes_on_from_its_text(tmp_path):
    config = Config(gear="high", generation=GenerationConfig(max_tokens=8), ui=UIConfig(export_dir=str(tmp_path / "out")))
    app = make_app(tmp_path, entry=POCKET, config=config, create_backend=_pocket_recording_prompts)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        app.backend.eos_ids = set()  # the third part goes past the 18 tokens where the model ends its turn
        await say(pilot, app, QUESTION)
        [_, (_, first, end)] = _stored(app)
        assert end == "length"
        chat = app.chat_screen.chat
        [reply_entry] = chat.replies
        assert reply_entry.meta.startswith("8 tokens · ")

        await _continue(pilot, app)
        [user, (role, whole, end)] = _stored(app)
        assert user == ("user", QUESTION, None) and role == "assistant"  # still one message and one reply
        assert whole.startswith(first) and len(whole) > len(first) and end == "length"
        # The same model asked once for 16 tokens says the same (high gear: no gear choice differs).
        once = app.backend.generate([{"role": "user", "content": QUESTION}], GenerationParams(max_tokens=16, gear_mode=GearMode.HIGH))
        assert whole == "".join(e.text for e in once if isinstance(e, TokenEvent))
        # The request carried the unfinished reply: the prompt ends with its text, not with an end of turn.
        tokenizer, eos = app.backend.tokenizer, app.backend.eos_ids
        asked, continued = app.backend.prompts[:2]
        assert continued[-1] not in eos and tokenizer.decode(continued).endswith(first.strip())
        assert tokenizer.decode(continued).startswith(tokenizer.decode(asked))  # and the question before it
        # One reply on screen, with all of the text and a line that counts both parts.
        assert chat.replies == [reply_entry] and reply_entry.text == whole
        assert reply_entry.meta.startswith("16 tokens · ") and reply_entry.meta.endswith(" · high mode · low 0% mid 0% high 100% · length")
        assert app.transcript == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": whole}]
        [message_id] = [m.id for m in app.history.messages(app.conversation_id) if m.role == "assistant"]
        assert _positions(app, message_id) == list(range(16))
        assert "".join(t.text for t in app.history.tokens(message_id)) == whole

        await pilot.press("f8")  # the export has the reply once, whole, with its line
        [markdown] = (tmp_path / "out").glob("*.md")
        text = markdown.read_text()
        assert text.count(first) == 1 and whole in text and f"_{reply_entry.meta}_" in text
        [jsonl] = (tmp_path / "out").glob("*.jsonl")
        trace = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert [t["position"] for t in trace] == list(range(16))

        conversation = app.conversation_id  # reopened, it goes on from the stored reply
        await pilot.press("f5", "f6")
        await wait_for(pilot, lambda: getattr(app.screen, "conversations", None), "the list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation_id == conversation, "the chat to reopen")
        assert [r.meta for r in app.chat_screen.chat.replies] == [reply_entry.meta]
        await _continue(pilot, app)
        [_, (_, longer, end)] = _stored(app)
        assert end == "length" and longer.startswith(whole) and len(longer) > len(whole)
        assert _positions(app, message_id) == list(range(24))
        assert app.chat_screen.chat.replies[0].meta.startswith("24 tokens · ")


async def test_continue_with_nothing_to_continue_says_why(tmp_path):
    app = make_app(tmp_path, hold_after=3)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+g")
        assert app.reply is None
        await pilot.press(*"hi", "enter")
        await wait_for(pilot, lambda: app.readings.reply_tokens == 3, "3 tokens")
        await pilot.press("ctrl+g")  # still streaming
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.reply is None, "the cancelled reply")
        notes = [n.message for n in app._notifications]
        assert "nothing to continue yet: send a message first" in notes
        assert "a reply is still streaming: escape stops it first" in notes
        assert app.chat_screen.chat.replies[-1].meta.endswith(" · cancelled")
        app.backend.hold_after = None
        await _continue(pilot, app)  # a cancelled reply goes on
        assert app.chat_screen.chat.replies[-1].meta.startswith("27 tokens · ")  # 3 + the 24 of max tokens


def _ollama(server: LoopbackServer, replies: list[list[tuple[str, float]]]) -> None:
    """An Ollama with one model that answers each chat request with the next of `replies`:
    (token, probability) each, ended by the length limit."""
    server.routes[("GET", "/api/tags")] = lambda _: Reply.json({"models": [{"name": "tiny:latest", "model": "tiny:latest"}]})
    server.routes[("GET", "/api/version")] = lambda _: Reply.json({"version": "0.13.0"})
    server.routes[("POST", "/api/show")] = lambda _: Reply.json({"model_info": {"llama.vocab_size": 64}})
    answers = iter(replies)

    def chat(body):
        lines = []
        for token, p in next(answers):
            entry = {"token": token, "logprob": math.log(p), "top_logprobs": [{"token": token, "logprob": math.log(p)}]}
            lines.append({"message": {"role": "assistant", "content": token}, "logprobs": [entry], "done": False})
        lines.append({"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "length"})
        return Reply(steps=[json.dumps(line).encode() + b"\n" for line in lines])

    server.routes[("POST", "/api/chat")] = chat


async def test_a_reply_over_http_goes_on_from_a_trailing_assistant_message(tmp_path):
    server = LoopbackServer()
    _ollama(server, [[("Hi", 0.9), (" there", 0.8)], [(",", 0.7), (" friend", 0.6)]])
    entry = BackendEntry(label="ollama", backend="ollama", model="tiny", url=server.url)
    app = make_app(tmp_path, entry=entry, create_backend=lambda entry, config: OllamaBackend("tiny", server.url))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot, app)
            await say(pilot, app, "hello")
            await _continue(pilot, app)
            asked, continued = [body["messages"] for method, path, body in server.requests if path == "/api/chat"]
            assert asked == [{"role": "user", "content": "hello"}]
            assert continued == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi there"}]
            assert _stored(app) == [("user", "hello", None), ("assistant", "Hi there, friend", "length")]
            [reply] = app.chat_screen.chat.replies
            assert reply.text == "Hi there, friend" and reply.meta.startswith("4 tokens · ")
            assert not [n for n in app._notifications if n.severity == "warning"]  # Ollama continues: nothing to warn of
    finally:
        server.stop()
