"""Switching backends by keyboard mid-conversation: Transformers in this process, then a real
llama.cpp server over the OpenAI-compatible API, then back; the conversation carries over."""

import time

import pytest

from gearterm.backends.base import GenerationParams, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend
from gearterm.backends.openai_compat import OpenAIBackend
from conftest import STORIES_GGUF
from gearterm.app.app import GeartermApp
from gearterm.config import BackendEntry, Config, GenerationConfig
from gearterm.history import History


async def wait_for(pilot, condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def say(pilot, app, text: str) -> str:
    """Type a message, send it, wait for the whole reply; returns the reply's text."""
    before = len(app.transcript)
    app.chat_screen.prompt.focus()
    await pilot.press(*text, "enter")
    await wait_for(pilot, lambda: app.reply is None and len(app.transcript) == before + 2, f"the reply to {text!r}")
    return app.transcript[-1]["content"]


async def switch_to(pilot, app, entries, target) -> None:
    """f2 opens the picker; arrow down to the entry and enter loads it."""
    await pilot.press("f2")
    await wait_for(pilot, lambda: getattr(app.screen, "entries", None), "the backend picker's list")
    await pilot.press(*["down"] * entries.index(target), "enter")
    await wait_for(pilot, lambda: app.entry == target and app.loading_entry is None, f"{target.label} to load")


def greedy_reference(backend: HFBackend, messages, max_tokens: int) -> str:
    """What the same weights reply at full precision, computed in this process."""
    events = backend.generate(messages, GenerationParams(max_tokens=max_tokens, gear_mode=GearMode.HIGH))
    return "".join(e.text for e in events if isinstance(e, TokenEvent))


@pytest.mark.slow
async def test_switch_between_transformers_and_llama_cpp_mid_conversation(stories_hf, stories_backend, llama_server):
    hf = BackendEntry(label="stories260K in-process", backend="hf", model=str(stories_hf))
    server = BackendEntry(label="stories260K on llama.cpp", backend="openai", model=str(STORIES_GGUF), url=llama_server)
    entries = [hf, server]
    config = Config(backend="hf", model=str(stories_hf), device="cpu", generation=GenerationConfig(max_tokens=12))
    history = History(None)
    app = GeartermApp(config, hf, history, discover=lambda _: (list(entries), []))

    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.backend, HFBackend), "the Transformers backend")
        first = await say(pilot, app, "Once upon a time")
        assert first.strip()

        await switch_to(pilot, app, entries, server)
        assert isinstance(app.backend, OpenAIBackend) and app.backend.url == llama_server
        second = await say(pilot, app, " The cat")
        # The server got the whole conversation, the Transformers backend's reply included. (The
        # Transformers detokenizer drops the first token's leading space; llama.cpp keeps it.)
        assert second.lstrip() == greedy_reference(stories_backend, app.transcript[:-1], 12).lstrip()
        assert app.readings.entropy_source == "lower"  # the panes now show top-k bounds
        assert app.readings.entropy_lower is not None and app.readings.entropy_upper is not None

        await switch_to(pilot, app, entries, hf)
        assert isinstance(app.backend, HFBackend)
        third = await say(pilot, app, " Then")
        assert third.strip()

        assert [m["role"] for m in app.transcript] == ["user", "assistant"] * 3  # one conversation throughout
        saved = [m for m in history.messages(app.conversation_id) if m.role == "assistant"]
        assert [(m.backend, m.content, m.complete) for m in saved] == [
            ("hf", first, True), ("openai", second, True), ("hf", third, True)
        ]
