"""A conversation fitted into the context (backends.context_fit), alone and on the pocket
model through the backend."""

import json

import pytest

from gearterm.backends.base import GenerationParams, Notice, ReplyDone, TokenEvent
from gearterm.backends.context_fit import fit
from gearterm.backends.gearbox import GearMode


def words(messages):
    """One id a word, a marker a message: enough to count what fits."""
    return [i for m in messages for i in [0] + [hash(w) % 1000 + 1 for w in m["content"].split()]]


def turns(n: int, words_each: int = 20) -> list[dict]:
    out = [{"role": "system", "content": "be brief " * 5}]
    for i in range(n):
        out += [{"role": "user", "content": f"question {i} " + "word " * words_each},
                {"role": "assistant", "content": f"answer {i} " + "word " * words_each}]
    return out + [{"role": "user", "content": "the newest question"}]


def test_old_turns_go_first_and_never_the_system_prompt_or_the_newest_message():
    messages = turns(20)
    fitted = fit(messages, words, context=200, max_tokens=50)
    kept = messages[:1] + messages[1 + fitted.dropped_turns:]
    assert fitted.dropped_turns > 0 and fitted.dropped_turns % 2 == 0  # whole turns
    assert fitted.ids == words(kept) and len(fitted.ids) <= 200 - 50
    assert kept[0]["role"] == "system" and kept[-1]["content"] == "the newest question"
    assert kept[1]["role"] == "user" and fitted.cut_to is None
    assert fitted.max_tokens == 50


def test_a_reply_being_continued_keeps_the_message_it_answers():
    messages = turns(20)[:-1]  # ends with the assistant's answer 19: the reply to continue
    fitted = fit(messages, words, context=200, max_tokens=50)
    kept = messages[:1] + messages[1 + fitted.dropped_turns:]
    assert fitted.dropped_turns > 0 and fitted.dropped_turns % 2 == 0 and fitted.cut_to is None
    assert [m["content"].split()[:2] for m in kept[-2:]] == [["question", "19"], ["answer", "19"]]
    alone = fit(messages, words, context=60, max_tokens=8)  # room for no more than the newest turn
    assert alone.dropped_turns == len(messages) - 3 and alone.ids[-5:] == words(messages[-1:])[-5:]


def test_a_newest_message_too_long_alone_keeps_its_end_and_the_reply_its_room():
    messages = [{"role": "user", "content": "word " * 1000 + "THE END"}]
    fitted = fit(messages, words, context=512, max_tokens=600)
    assert fitted.cut_to == 512 - 128 and fitted.ids == words(messages)[-384:]  # a quarter kept for the reply
    assert fitted.max_tokens == 128


def test_max_tokens_is_bounded_by_the_room_left_never_by_cutting_the_prompt():
    messages = [{"role": "user", "content": "word " * 100}]
    fitted = fit(messages, words, context=512, max_tokens=600)
    assert fitted.ids == words(messages) and fitted.cut_to is None and fitted.dropped_turns == 0
    assert fitted.max_tokens == 512 - len(fitted.ids)


@pytest.fixture(scope="module")
def pocket():
    from gearterm.backends.hf import HFBackend
    from gearterm.models import POCKET_MODEL_DIR

    backend = HFBackend(str(POCKET_MODEL_DIR), device="cpu", gate=False)
    backend.load()
    return backend


def reply(backend, messages, max_tokens):
    events = list(backend.generate(messages, GenerationParams(max_tokens=max_tokens, gear_mode=GearMode.HIGH)))
    return [e for e in events if isinstance(e, TokenEvent) and e.is_token], [e for e in events if isinstance(e, Notice)], events[-1]


def test_two_prompts_with_max_tokens_past_the_context_get_their_own_replies(pocket):
    from gearterm.models import POCKET_MODEL_DIR

    context = json.loads((POCKET_MODEL_DIR / "config.json").read_text())["max_position_embeddings"]
    assert pocket.max_positions == context
    first, notices, _ = reply(pocket, [{"role": "user", "content": "Tell me of the sea."}], context + 88)
    second, _, _ = reply(pocket, [{"role": "user", "content": "What of the king and his armies?"}], context + 88)
    assert not notices
    assert [t.token_id for t in first] != [t.token_id for t in second]


def test_a_reply_that_reaches_the_end_of_the_context_says_context_full(pocket):
    pocket.eos_ids, eos = set(), pocket.eos_ids  # the reply runs until the context ends
    try:
        # A prompt of most of the context (about 7 tokens a sentence), a reply asked for more than is left
        messages = [{"role": "user", "content": "Tell me of the sea. " * (pocket.max_positions // 10)}]
        tokens, notices, done = reply(pocket, messages, pocket.max_positions)
    finally:
        pocket.eos_ids = eos
    assert isinstance(done, ReplyDone) and done.reason == "context full" and not notices
    assert len(pocket.encode_chat(messages)) + len(tokens) == pocket.max_positions == done.positions


def test_a_long_conversation_drops_old_turns_once_and_keeps_the_newest(pocket):
    messages = turns(30, words_each=pocket.max_positions // 20)  # about twice the context
    tokens, notices, done = reply(pocket, messages, 32)
    assert [n.text for n in notices] == [n.text for n in notices if n.text.startswith("earlier turns no longer fit")]
    assert len(notices) == 1 and done.reason in ("stop", "length") and tokens
