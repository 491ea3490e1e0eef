"""Lossless mode (backends.lossless): greedy replies equal forced high's token for token on real
models, and sampled tokens are distributed as forced high's (chi-square on a tiny vocabulary)."""

from collections import Counter

import pytest
import torch
from scipy.stats import chi2

from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent
from gearterm.backends.decoder_weights import build_decoder
from gearterm.backends.draft_choice import DraftChoice
from gearterm.backends.gearbox import GearMode
from gearterm.backends.hf import HFBackend
from gearterm.backends.lossless import LosslessDecoding
from gearterm.backends.sampling import sampling_probs
from gearterm.kernels.gear import Gear, GearSelector
from gearterm.models import POCKET_MODEL_DIR

from conftest import SMOLLM2, STORIES_HF, _need


def reply(backend, messages, mode, tokens=200, **kw):
    events = list(backend.generate(messages, GenerationParams(max_tokens=tokens, gear_mode=mode, **kw)))
    kept = [e for e in events if isinstance(e, TokenEvent) and e.token_id is not None]
    return kept, next(e for e in events if isinstance(e, ReplyDone))


def check_lossless_equals_forced_high(path, messages, tokens=200):
    backend = HFBackend(str(path), device="cpu")
    backend.load()
    backend.eos_ids = set()  # every reply `tokens` long, past where a chat model ends its turn
    high, _ = reply(backend, messages, GearMode.HIGH, tokens)
    lossless, done = reply(backend, messages, GearMode.LOSSLESS, tokens)
    assert len(high) == tokens and [e.token_id for e in lossless] == [e.token_id for e in high]
    # The drafts did the work: many tokens were the draft gear's, verified, not the high gear's own.
    from_draft = sum(e.kept_from == "draft" for e in lossless)
    assert from_draft == done.stats["accepted"] > len(lossless) / 4
    assert done.stats["draft_gear"] == "low" and set(done.stats["drafted_by_gear"]) == {"low"}
    assert done.stats["high_alone"] == 0
    assert {e.kept_from for e in lossless} == {"draft", "high"}
    assert all(e.gear is (Gear.LOW if e.kept_from == "draft" else Gear.HIGH) for e in lossless)


@pytest.mark.slow
def test_greedy_lossless_is_forced_high_on_stories260k():
    check_lossless_equals_forced_high(_need(STORIES_HF), [{"role": "user", "content": "Once upon a time"}])


def test_greedy_lossless_with_the_draft_gear_chosen_by_cost_is_forced_high():
    """Where gearterm chooses the draft gear, both gears draft (each is tried first) and the reply
    stays forced high's across the switches."""
    backend = HFBackend(str(_need(STORIES_HF)), device="cpu")
    backend.load()
    backend.eos_ids = set()
    messages = [{"role": "user", "content": "Once upon a time"}]
    high, _ = reply(backend, messages, GearMode.HIGH, 120)
    lossless, done = reply(backend, messages, GearMode.LOSSLESS, 120, lossless_draft=None)
    assert [e.token_id for e in lossless] == [e.token_id for e in high]
    assert done.stats["draft_gear"] == "auto" and set(done.stats["drafted_by_gear"]) == {"low", "mid"}
    assert done.stats["high_alone"] >= 4  # drafting nothing was tried too (draft_choice.FIRST_TRIAL)
    assert {e.gear for e in lossless if e.kept_from == "draft"} == {Gear.LOW, Gear.MID}
    assert sum(done.stats["drafted_by_gear"].values()) == done.stats["drafted"]


@pytest.mark.slow
def test_greedy_lossless_is_forced_high_on_the_pocket_model():
    messages = [{"role": "user", "content": "Tell me of the sea, the ships, and the men who sail them."}]
    check_lossless_equals_forced_high(POCKET_MODEL_DIR, messages)


@pytest.mark.slow
def test_greedy_lossless_is_forced_high_on_smollm2_gguf():
    messages = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
    check_lossless_equals_forced_high(_need(SMOLLM2), messages)


# Sampling: a tiny random model verifies, a second one drafts. Two unrelated models give draft
# and target distributions far apart, which is what gives the chi-square test its power.
VOCAB, PROMPT, RUNS = 8, [1, 5, 2], 2000
PARAMS = GenerationParams(temperature=0.8, top_p=0.9, seed=0)


def tiny_decoder(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=16, initializer_range=0.1,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    decoder = build_decoder(config, model.state_dict(), torch.float32, torch.device("cpu"))
    decoder.allocate(16)
    return decoder


@pytest.fixture(scope="module")
def models():
    return tiny_decoder(0), tiny_decoder(1)


def forced_high_pairs(high) -> dict[tuple[int, int], float]:
    """The exact probability of each first two tokens after PROMPT under forced high's sampler."""
    with torch.inference_mode():
        first = sampling_probs(high(torch.tensor(PROMPT), 0)[-1], PARAMS)
        first = first / first.sum()
        pairs = {}
        for a in range(VOCAB):
            second = sampling_probs(high(torch.tensor([*PROMPT, a]), 0)[-1], PARAMS)
            second = second / second.sum()
            pairs |= {(a, b): (first[a] * second[b]).item() for b in range(VOCAB)}
    return pairs


def lossless_pairs(high, draft, decoding_class=LosslessDecoding) -> Counter:
    """The first two tokens after PROMPT in RUNS seeded lossless replies, drafts of 2 tokens."""
    selector = GearSelector()

    def run(ids, pos):
        return (high if selector.gear is Gear.HIGH else draft)(torch.tensor(ids), pos)

    counts = Counter()
    with torch.inference_mode():
        for model in (high, draft):
            model(torch.tensor(PROMPT[:-1]), 0)
        for seed in range(RUNS):
            params = GenerationParams(temperature=0.8, top_p=0.9, seed=seed)
            decoding = decoding_class(run, selector, params, DraftChoice([Gear.LOW]), max_draft=2)
            kept = decoding.cycle(PROMPT[-1], len(PROMPT) - 1, 3).kept
            if len(kept) == 1:
                kept += decoding.cycle(kept[0].token_id, len(PROMPT), 2).kept
            counts[kept[0].token_id, kept[1].token_id] += 1
    return counts


def chi_square_p(counts: Counter, expected: dict) -> float:
    """p-value of the observed counts against the expected probabilities; cells expecting fewer
    than 5 draws are pooled into one, as the test's chi-square approximation needs."""
    big = [c for c, p in expected.items() if p * RUNS >= 5]
    observed = [counts[c] for c in big] + [RUNS - sum(counts[c] for c in big)]
    wanted = [expected[c] * RUNS for c in big] + [RUNS * (1 - sum(expected[c] for c in big))]
    if wanted[-1] < 5:  # nothing left worth a cell of its own
        observed, wanted = observed[:-1], wanted[:-1]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, wanted))
    return chi2.sf(statistic, len(observed) - 1)


def test_sampled_lossless_tokens_are_distributed_as_forced_high(models):
    high, draft = models
    expected = forced_high_pairs(high)
    counts = lossless_pairs(high, draft)
    # A true rule fails at this level one time in 10,000.
    assert chi_square_p(counts, expected) > 1e-4


class ResampleFromHigh(LosslessDecoding):
    """A classic mistake: after a rejection, draw from p itself instead of max(0, p - q)."""

    def _verify(self, drafts, draft_probs, high):
        accepted, own = super()._verify(drafts, draft_probs, high)
        if accepted < len(drafts):
            p = sampling_probs(high[accepted], self.params)
            own = int(torch.multinomial(p, 1, generator=self._rng(p.device)).item())
        return accepted, own


def test_the_chi_square_test_catches_a_wrong_acceptance_rule(models):
    high, draft = models
    counts = lossless_pairs(high, draft, ResampleFromHigh)
    assert chi_square_p(counts, forced_high_pairs(high)) < 1e-6


def test_the_next_turn_reuses_what_a_lossless_reply_left_in_the_cache():
    """The cache ends each cycle holding the high gear's keys and values for every kept
    position: a next turn in lossless mode (its prompt at the high gear) reuses them and replies
    as it would from a fresh cache."""
    backend = HFBackend(str(_need(STORIES_HF)), device="cpu")
    backend.load()
    first = [{"role": "user", "content": "Once upon a time"}]
    tokens, _ = reply(backend, first, GearMode.LOSSLESS, tokens=60)
    second = [*first, {"role": "assistant", "content": "".join(e.text for e in tokens)},
              {"role": "user", "content": "The next day"}]  # fmt: skip
    reused, done = reply(backend, second, GearMode.LOSSLESS, tokens=60)
    backend.cached.keep(0)  # forget every position: the prompt is read afresh
    fresh, fresh_done = reply(backend, second, GearMode.LOSSLESS, tokens=60)
    assert done.stats["prompt_reused"] > 40 and fresh_done.stats["prompt_reused"] == 0
    assert [e.token_id for e in reused] == [e.token_id for e in fresh]
