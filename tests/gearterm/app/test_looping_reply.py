"""A greedy reply that goes round in a loop until the token limit is explained once, with what
helps: the real SmolLM2-135M-Instruct, greedy, loops on a haiku ("a fleeting sight, a fleeting
sight, ..."), seen in the app at 80x24 before this was built."""

import pytest
from app_helpers import make_app, say, wait_for
from conftest import SMOLLM2

from gearterm.app.repetition import repeating_piece
from gearterm.config import BackendEntry, Config, GenerationConfig, UIConfig


def test_a_loop_is_found_through_a_last_round_cut_short_and_named_from_a_words_start():
    looped = "The rain of a roof, " + "a fleeting sight, " * 14 + "a fleeting"
    assert repeating_piece(looped) == "sight, a fleeting "
    assert repeating_piece("Once more! " * 10) in ("Once more! ", "more! Once ")  # either word may start it
    assert repeating_piece("x" * 100) == "x"


def test_prose_rules_short_repeats_and_a_refrain_before_the_end_are_not_loops(tinystories_text):
    prose = tinystories_text.read_text()[:3000]
    assert repeating_piece(prose) is None
    assert repeating_piece("A table:\n\n" + "-" * 40) is None  # a rule shorter than a loop must be
    assert repeating_piece("ha ha ha ha") is None
    assert repeating_piece("\n\n" * 50) is None  # blank lines: nothing to quote
    assert repeating_piece("la la la la la la la la la la la la la la la la la la. And then she sang no more.") is None


async def test_a_greedy_reply_looping_to_the_token_limit_is_explained_once(tmp_path):
    if not SMOLLM2.exists():
        pytest.skip(f"{SMOLLM2} is absent: this test needs ../shared beside the checkout")
    entry = BackendEntry(label="smollm2", backend="hf", model=str(SMOLLM2))
    config = Config(
        gear="high", generation=GenerationConfig(max_tokens=60), ui=UIConfig(export_dir=str(tmp_path / "exports"))
    )
    app = make_app(tmp_path, entry=entry, config=config)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.backend is not None and app.loading_entry is None, "SmolLM2 to load", 240)
        await say(pilot, app, "Write a haiku about rain on a tin roof.")
        assert app.last.reply_facts.end_reason == "length"
        said = [n.message for n in app._notifications if n.title == "a looping reply"]
        assert len(said) == 1 and "“sight, a fleeting”" in said[0] and "f9 sets this chat's temperature" in said[0]
        await say(pilot, app, "Write a haiku about rain on a tin roof.")  # the same loop: said once a session
        assert len([n for n in app._notifications if n.title == "a looping reply"]) == 1
