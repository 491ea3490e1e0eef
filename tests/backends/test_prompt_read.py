"""A long prompt is read PROMPT_STEP positions a call, with a PromptRead event between calls
(backends.geared_generation): the wait before the first token is counted, and the reply is the
one a single call gives. The real pocket model on the CPU, through each local backend; the step
is made small so that a prompt of a few hundred tokens takes several."""

import pytest

from gearterm.backends import geared_generation
from gearterm.backends.base import GenerationParams, PromptRead, ReplyDone, TokenEvent

from conftest import local_pocket

STORY = "Once upon a time there was a little fox who lived by the river and liked to count the boats. " * 24


@pytest.fixture(scope="module", params=["hf", "mlx"])
def pocket(request):
    return local_pocket(request.param)


def read(backend, step: int, monkeypatch) -> tuple[list[PromptRead], list[TokenEvent], ReplyDone]:
    monkeypatch.setattr(geared_generation, "PROMPT_STEP", step)
    backend.cached.keep(0)  # a fresh prompt: nothing of it reused
    events = list(backend.generate([{"role": "user", "content": STORY}], GenerationParams(max_tokens=24)))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    return [e for e in events if isinstance(e, PromptRead)], tokens, events[-1]


def test_a_long_prompt_says_how_far_it_was_read_and_replies_as_one_call_does(pocket, monkeypatch):
    reads, tokens, done = read(pocket, 128, monkeypatch)
    prompt = done.stats["prompt_tokens"]
    assert prompt > 512
    assert [(r.done, r.total) for r in reads] == [(n, prompt) for n in range(128, prompt, 128)]
    whole_reads, whole_tokens, _ = read(pocket, 4096, monkeypatch)
    assert whole_reads == []
    assert [(t.token_id, t.gear) for t in tokens] == [(t.token_id, t.gear) for t in whole_tokens]
    # The gear policy calibrated on the entropies of every position, however they were read.
    assert tokens[0].thresholds_bits == pytest.approx(whole_tokens[0].thresholds_bits, abs=1e-3)


def test_a_prompt_within_one_step_says_nothing(pocket, monkeypatch):
    reads, tokens, _ = read(pocket, geared_generation.PROMPT_STEP, monkeypatch)
    assert reads == [] and tokens
