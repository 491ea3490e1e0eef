"""The status bar's context meter: how many of the model's positions the chat filled at its last
reply (the prompt the model read and the reply), counted by the real pocket model's tokenizer."""

import re

from app_helpers import loaded, make_app, say

from gearterm.app.app import _model_label
from gearterm.config import BackendEntry

POCKET = BackendEntry(label="pocket", backend="hf")


def _meter(app) -> str:
    return re.search(r"context ([^·]*)·", str(app.chat_screen.status.render())).group(1).strip()


async def test_the_meter_counts_the_prompt_and_the_reply_grows_with_the_chat_and_starts_over(tmp_path):
    app = make_app(tmp_path, entry=POCKET, max_tokens=6)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        context = app.backend.max_positions
        assert _meter(app) == f"{context:,}"  # nothing filled yet, nothing claimed
        prompts, generate = [], app.backend.generate
        app.backend.generate = lambda messages, params: (prompts.append(list(messages)), generate(messages, params))[1]
        used = []
        for text in ("Good morning, sir.", "How fares the king?"):
            await say(pilot, app, text)
            used.append(len(app.backend.encode_chat(prompts[-1])) + app.last.reply_facts.tokens)
            assert _meter(app) == f"{used[-1]:,} of {context:,} used"
        assert used[1] > used[0]  # the second turn's prompt holds the first turn
        await pilot.press("f5")  # a new chat: nothing filled
        assert _meter(app) == f"{context:,}"


def test_a_model_file_on_disk_is_named_by_its_file_name_wherever_its_path_is(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path / "models")
    assert _model_label("../models/tiny.Q4_1.gguf") == "tiny.Q4_1.gguf"
    assert _model_label("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert _model_label("llama3.1:8b") == "llama3.1:8b"


async def test_a_chat_context_set_below_the_models_is_the_one_the_meter_counts_against(tmp_path):
    from test_settings import _set

    app = make_app(tmp_path, entry=POCKET, max_tokens=6)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await _set(pilot, app, context="100")
        assert _meter(app) == "100"
        await say(pilot, app, "Good morning, sir.")
        assert re.fullmatch(r"\d+ of 100 used", _meter(app))
