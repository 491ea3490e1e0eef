"""Reuse of the KV cache across turns (backends.kv_reuse), on real models: each turn, a
regenerate and an edit of an earlier message read only what the cache does not hold, and reply
with the tokens and gears a fresh prompt gives (greedy). The HF backend on the CPU (the pocket
model, SmolLM2-135M-Instruct's GGUF), on a GPU where there is one, and the MLX backend."""

from dataclasses import dataclass

import pytest
import torch

from gearterm.backends.base import GenerationParams, Notice, ReplyDone, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend
from gearterm.backends.kv_reuse import CachedTokens
from gearterm.kernels.gear import Gear
from gearterm.models import POCKET_MODEL_DIR

from conftest import SMOLLM2, local_pocket

QUESTIONS = [
    "And the king said unto the prophet, What shall I do?",
    "Tell me of the house of the LORD.",
    "Who went up into the mountain?",
    "And what did the people say?",
]


@dataclass
class Answer:
    tokens: list[tuple[int, Gear]]  # (id, the gear that produced it)
    text: str
    notices: list[str]
    thresholds: tuple[float, float]  # the gear policy's, as calibrated on the prompt
    done: ReplyDone

    @property
    def reused(self) -> int:
        return self.done.stats["prompt_reused"]


def reply(backend, messages, params) -> Answer:
    events = list(backend.generate(messages, params))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert isinstance(events[-1], ReplyDone)
    return Answer(
        [(t.token_id, t.gear) for t in tokens if t.is_token],
        "".join(t.text for t in tokens),
        [e.text for e in events if isinstance(e, Notice)],
        tokens[0].thresholds_bits,
        events[-1],
    )


def fresh(backend, messages, params) -> Answer:
    backend.cached.keep(0)
    answer = reply(backend, messages, params)
    assert answer.reused == 0
    return answer


def converse(backend, questions, params, system=None) -> list[tuple[list[dict], Answer]]:
    """Each question in turn after the replies so far: per turn, the messages sent and the reply."""
    messages = [{"role": "system", "content": system}] if system else []
    turns = []
    for question in questions:
        messages.append({"role": "user", "content": question})
        turns.append((list(messages), reply(backend, messages, params)))
        messages.append({"role": "assistant", "content": turns[-1][1].text})
    return turns


def assert_same_reply(reused: Answer, fresh_reply: Answer) -> None:
    """Tokens and gears equal, and the policy's thresholds to float rounding: the cached
    positions' entropies stood in for the fresh prompt's."""
    assert reused.tokens == fresh_reply.tokens
    assert reused.done.reason == fresh_reply.done.reason
    assert reused.thresholds == pytest.approx(fresh_reply.thresholds, rel=1e-4)


def test_reusable_is_the_common_prefix_at_the_prompts_gear_and_leaves_the_last_position():
    cached = CachedTokens()
    cached.add([1, 5, 6, 7], Gear.HIGH, [0.1, 0.2, 0.3, 0.4])
    cached.add([8, 9], Gear.LOW, [0.5, 0.6])  # a reply decoded in the low gear
    assert cached.reusable([1, 5, 6, 7, 8, 9, 10], Gear.HIGH) == 4  # the low gear's positions run again
    assert cached.reusable([1, 5, 6, 7, 8, 9, 10], Gear.LOW) == 0  # the prompt was read in another gear
    assert cached.reusable([1, 5, 2, 7], Gear.HIGH) == 2  # an edit
    assert cached.reusable([1, 5, 6, 7], Gear.HIGH) == 3  # a regenerate: the last position gives the logits
    cached.keep(2)
    assert (cached.ids, cached.gears, cached.entropies) == ([1, 5], [Gear.HIGH] * 2, [0.1, 0.2])


@pytest.fixture(scope="module", params=["hf", "mlx"])
def pocket(request):
    """The pocket model on the CPU, through each local backend, held to a 512-position context
    (the `context` setting; the model's is 2,048) so that a conversation outgrows it soon."""
    return local_pocket(request.param, context=512)


@pytest.mark.parametrize("mode", [GearMode.AUTO, GearMode.LOW])
def test_each_turn_reads_only_what_is_new_and_replies_as_a_fresh_prompt(pocket, mode):
    params = GenerationParams(max_tokens=32, gear_mode=mode)
    turns = converse(pocket, QUESTIONS, params)
    assert turns[0][1].reused == 0
    for (_, before), (_, answer) in zip(turns, turns[1:]):
        # The whole earlier prompt is reused; in a forced gear the reply's positions too.
        assert answer.reused >= before.done.stats["prompt_tokens"] + (mode is GearMode.LOW)
    if mode is GearMode.AUTO:  # replies shifted gears: their positions in other gears ran again
        assert any(len({gear for _, gear in answer.tokens}) > 1 for _, answer in turns)
    for messages, answer in reversed(turns):  # newest first: the cache is rolled back each time
        assert_same_reply(answer, fresh(pocket, messages, params))


def test_a_regenerate_and_an_edit_roll_the_cache_back_to_the_common_prefix(pocket):
    params = GenerationParams(max_tokens=32)
    turns = converse(pocket, QUESTIONS[:3], params)
    last_messages, last = turns[-1]
    again = reply(pocket, last_messages, params)  # regenerate: the same prompt
    assert again.reused == again.done.stats["prompt_tokens"] - 1
    assert_same_reply(again, last)
    edited = [*turns[1][0][:-1], {"role": "user", "content": "Tell me of the river and the ships."}]
    answer = reply(pocket, edited, params)
    assert 0 < answer.reused < turns[1][1].done.stats["prompt_tokens"]
    assert_same_reply(answer, fresh(pocket, edited, params))


def test_a_conversation_that_outgrows_the_context_still_replies_as_a_fresh_prompt(pocket):
    """Past 512 positions the oldest turns are dropped: the prompt changes after the system
    prompt, so less is reused, and what is reused is right."""
    params = GenerationParams(max_tokens=48)
    questions = [f"{q} Speak at length of it, turn {n}." for n in range(3) for q in QUESTIONS]
    pocket.eos_ids, eos = set(), pocket.eos_ids  # replies of 48 tokens: the turns outgrow 512 soon
    try:
        turns = converse(pocket, questions, params, system="Thou art a teller of old tales.")
        dropped = [i for i, (_, answer) in enumerate(turns) if any("no longer fit" in n for n in answer.notices)]
        assert dropped, "the conversation never outgrew the context"
        for messages, answer in [turns[i] for i in dropped[-2:]]:
            assert_same_reply(answer, fresh(pocket, messages, params))
    finally:
        pocket.eos_ids = eos


def test_a_reply_cancelled_after_its_next_step_was_launched_leaves_the_cache_right():
    """The GPU's run-ahead order, here on the CPU: the step after the last token handed over
    ran, but its logits were never measured; the next turn must not count on that position."""

    class RunAhead(HFBackend):
        def _steps_run_ahead(self) -> bool:
            return True

    backend = RunAhead(str(POCKET_MODEL_DIR), device="cpu")
    backend.load()
    params = GenerationParams(max_tokens=40)
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    text, tokens = "", 0
    for event in backend.generate(messages, params):
        if isinstance(event, TokenEvent):
            text, tokens = text + event.text, tokens + event.is_token
            if tokens == 5:
                backend.cancel()
        elif isinstance(event, ReplyDone):
            assert event.reason == "cancelled" and event.tokens == 5
    assert len(backend.cached) == event.stats["prompt_tokens"] + 4  # the fifth token's step is not counted
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": QUESTIONS[1]}]
    answer = reply(backend, messages, params)
    assert answer.reused > 0
    assert_same_reply(answer, fresh(backend, messages, params))


@pytest.mark.slow
def test_smollm2_instruct_turns_reuse_the_cache_and_reply_as_fresh_prompts():
    if not SMOLLM2.is_file():
        pytest.skip(f"{SMOLLM2} absent: the test needs ../shared beside the repository")
    backend = HFBackend(str(SMOLLM2), device="cpu")
    backend.load()
    params = GenerationParams(max_tokens=40)
    questions = ["What is the capital of France?", "And of Italy?", "Which of the two is older?"]
    turns = converse(backend, questions, params, system="You are a brief assistant.")
    assert all(answer.reused > 0 for _, answer in turns[1:])
    for messages, answer in turns:
        assert_same_reply(answer, fresh(backend, messages, params))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_turns_reuse_the_cache_and_reply_as_fresh_prompts():
    """The CUDA-graph decoder: float32, so that the prompt's batched pass and the captured
    steps round alike and greedy choices cannot flip between them."""
    backend = HFBackend(str(POCKET_MODEL_DIR), device="cuda", dtype="float32", compile=False)
    backend.load()
    params = GenerationParams(max_tokens=32)
    turns = converse(backend, QUESTIONS, params)
    assert all(answer.reused > 0 for _, answer in turns[1:])
    for messages, answer in reversed(turns):
        assert_same_reply(answer, fresh(backend, messages, params))
