"""The Transformers backend end to end, on the real stories260K weights and a tiny random Llama."""

import math
import re

import pytest
import torch
from torch import nn

from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.geared_linear import GearedLinear
from gearterm.kernels.gear import GearSelector
from gearterm.backends.hf import HFBackend, perplexity
from gearterm.kernels.gear import Gear
from gearterm.kernels.nested import dequantize

from conftest import STORIES_GGUF, _need

STORY = [{"role": "user", "content": "Once upon a time"}]


def run(backend, mode=GearMode.AUTO, max_tokens=40, messages=STORY, **kw):
    events = list(backend.generate(messages, GenerationParams(max_tokens=max_tokens, gear_mode=mode, **kw)))
    tokens = [e for e in events if isinstance(e, TokenEvent) and e.token_id is not None]
    return tokens, events[-1]


@pytest.mark.parametrize("bias", [False, True])
def test_geared_linear_matches_nn_linear_per_gear(bias):
    torch.manual_seed(0)
    linear = nn.Linear(200, 48, bias=bias)
    selector = GearSelector()
    geared = GearedLinear(linear, selector)
    x = torch.randn(2, 5, 200)
    for gear in Gear:
        selector.gear = gear
        expected = nn.functional.linear(x, dequantize(geared.nested, gear), linear.bias)
        torch.testing.assert_close(geared(x), expected)
    selector.gear = Gear.HIGH
    # One row (a decode step) and many (a prompt) through nn.Linear's own op: bit-exact. A few
    # rows on a CPU may be weight @ x^T (kernels.matmul.linear): the same sums, in another order.
    for rows in (x[:1, :1], x.reshape(-1, 200).repeat(2, 1)):
        assert torch.equal(geared(rows), linear(rows))
    torch.testing.assert_close(geared(x), linear(x))


@pytest.mark.parametrize("weight_first", [False, True])
def test_a_few_rows_give_f_linear_s_sums_either_way(weight_first, monkeypatch):
    """Whichever way this machine multiplies a few rows faster (timed), the product is F.linear's."""
    from gearterm.kernels import matmul

    assert isinstance(matmul.weight_first.__wrapped__(torch.float32), bool)  # the timing runs
    monkeypatch.setattr(matmul, "weight_first", lambda dtype: weight_first)
    torch.manual_seed(1)
    w, b, x = torch.randn(48, 200), torch.randn(48), torch.randn(3, 200)
    torch.testing.assert_close(matmul.linear(x, w, b), nn.functional.linear(x, w, b))


def test_every_decoder_projection_is_geared_and_nothing_else(stories_backend):
    model = stories_backend.model
    geared = [n for n, m in model.named_modules() if isinstance(m, GearedLinear)]
    # q, k and v stacked, gate and up stacked: four projections a layer, five layers
    assert len(geared) == 5 * 4 == stories_backend.geared_layers
    assert all(n.startswith("layers.") for n in geared)
    assert not isinstance(model.lm_head, GearedLinear)
    assert isinstance(model.embed, nn.Embedding)


def test_forced_high_greedy_equals_transformers_generate(stories_backend, stories_hf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(stories_hf)
    plain = AutoModelForCausalLM.from_pretrained(stories_hf)
    prompt = tok("Once upon a time", return_tensors="pt")
    expected = plain.generate(**prompt, max_new_tokens=60, do_sample=False)[0, prompt.input_ids.shape[1] :]
    tokens, done = run(stories_backend, GearMode.HIGH, max_tokens=60)
    assert [t.token_id for t in tokens] == expected.tolist()
    assert done.reason == "length" and done.tokens == 60
    # The streamed deltas add up to the decoded reply.
    assert "".join(t.text for t in tokens) == tok.decode(expected, skip_special_tokens=True)


def test_first_token_entropy_is_the_exact_full_vocabulary_entropy(stories_backend, stories_hf):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(stories_hf)
    ids = torch.tensor([stories_backend.encode_chat(STORY)])
    p = torch.softmax(plain(ids).logits[0, -1].double(), -1)
    expected = -(p * p.log2()).sum().item()
    tokens, _ = run(stories_backend, GearMode.HIGH, max_tokens=1)
    assert tokens[0].entropy_bits == pytest.approx(expected, abs=1e-4)
    assert tokens[0].logprob == pytest.approx(math.log(p.max().item()), abs=1e-4)


@pytest.mark.parametrize("mode,gear", [(GearMode.LOW, Gear.LOW), (GearMode.MID, Gear.MID), (GearMode.HIGH, Gear.HIGH)])
def test_each_forced_gear_produces_text_and_entropy(stories_backend, mode, gear):
    tokens, _ = run(stories_backend, mode, max_tokens=20)
    assert len(tokens) == 20 and "".join(t.text for t in tokens).strip()
    assert all(t.gear == gear for t in tokens)
    assert all(math.isfinite(t.entropy_bits) and 0 <= t.entropy_bits <= 9 for t in tokens)


def test_auto_shifts_and_each_step_picks_the_next_gear(stories_backend):
    tokens, done = run(stories_backend, GearMode.AUTO, max_tokens=80)
    assert len({t.gear for t in tokens}) >= 2 and done.stats["shifts"] >= 1
    for now, after in zip(tokens, tokens[1:]):
        assert after.gear == now.next_gear  # step t's entropy chose the gear of step t + 1


def test_events_carry_the_thresholds_calibrated_to_the_prompt(stories_backend, tinystories_text):
    """A long prompt moves the policy's thresholds from the defaults (within the calibration's
    [0.5x, 2x] clamp); every event of the reply reports the same pair, as the entropy pane shows."""
    from gearterm.backends.gearbox import Gearbox

    story = tinystories_text.read_text()[:1500]
    tokens, _ = run(stories_backend, GearMode.AUTO, max_tokens=5, messages=[{"role": "user", "content": story}])
    low, high = tokens[0].thresholds_bits
    assert all(t.thresholds_bits == (low, high) for t in tokens)
    defaults = Gearbox(stories_backend.vocab_size)
    assert (low, high) != (defaults.default_low, defaults.default_high)
    assert 0.5 * defaults.default_low <= low <= 2 * defaults.default_low and low < high


def test_a_long_prompt_is_read_in_blocks_of_rows_with_the_tokens_and_entropies_of_whole_logits(
    stories_backend, tinystories_text, monkeypatch
):
    """A reply's prefill never asks the LM head for more than HEAD_ROWS positions at once,
    yet gives each prompt position's entropy (which calibrates the policy) and the greedy
    reply that the logits of one whole pass over prompt and reply give."""
    from gearterm.backends import decoder as decoder_module
    from gearterm.backends.decoder import HEAD_ROWS
    from gearterm.kernels.entropy import entropy_varentropy

    messages = [{"role": "user", "content": tinystories_text.read_text()[:800]}]
    ids = stories_backend.encode_chat(messages)
    assert len(ids) > HEAD_ROWS
    heights = []
    head = decoder_module.linear  # the LM head's multiply

    def measured_head(x, weight):
        heights.append(x.shape[0])
        return head(x, weight)

    monkeypatch.setattr(decoder_module, "linear", measured_head)
    tokens, _ = run(stories_backend, GearMode.HIGH, max_tokens=16, messages=messages)
    monkeypatch.undo()
    assert heights[:2] == [HEAD_ROWS, len(ids) - HEAD_ROWS] and set(heights[2:]) == {1}  # then a row a step
    reply = [t.token_id for t in tokens]
    with torch.no_grad():
        whole = stories_backend.model(torch.tensor(ids + reply[:-1]), 0)
    entropies = entropy_varentropy(whole)[0]
    assert whole[len(ids) - 1 :].argmax(-1).tolist() == reply
    assert stories_backend.cached.entropies[: len(ids)] == pytest.approx(entropies[: len(ids)].tolist(), abs=1e-4)
    assert [t.entropy_bits for t in tokens] == pytest.approx(entropies[len(ids) - 1 :].tolist(), abs=1e-4)


def test_low_gear_really_reads_other_weights(stories_backend):
    """Forced gears must change the computation: the three gears' entropies differ."""
    first = {mode: run(stories_backend, mode, max_tokens=1)[0][0].entropy_bits for mode in (GearMode.LOW, GearMode.MID, GearMode.HIGH)}
    assert len(set(first.values())) == 3


def test_sampling_is_reproducible_with_a_seed(stories_backend):
    a, _ = run(stories_backend, GearMode.HIGH, max_tokens=30, temperature=1.0, seed=7)
    b, _ = run(stories_backend, GearMode.HIGH, max_tokens=30, temperature=1.0, seed=7)
    greedy, _ = run(stories_backend, GearMode.HIGH, max_tokens=30)
    assert [t.token_id for t in a] == [t.token_id for t in b]
    assert [t.token_id for t in a] != [t.token_id for t in greedy]
    nucleus, _ = run(stories_backend, GearMode.HIGH, max_tokens=30, temperature=1.0, top_p=1e-6, seed=3)
    assert [t.token_id for t in nucleus] == [t.token_id for t in greedy]  # top-p that keeps one token


async def test_cancel_stops_within_one_token(stories_backend):
    seen = 0
    async for event in stories_backend.stream(STORY, GenerationParams(max_tokens=400)):
        if isinstance(event, TokenEvent):
            seen += 1
            if seen == 5:
                stories_backend.cancel()
        elif isinstance(event, ReplyDone):
            done = event
    assert done.reason == "cancelled"
    assert done.tokens <= 6 and seen <= 6
    tokens, again = run(stories_backend, max_tokens=5)  # usable for the next reply
    assert again.reason == "length" and len(tokens) == 5


async def test_a_fault_in_the_generation_thread_ends_the_reply_with_its_error(stories_backend):
    """Text that is not Unicode (a lone surrogate: undecodable bytes passed through) makes the
    tokenizer raise in the generation thread: the stream still ends with a ReplyDone, the reason
    said, and the backend serves the next reply."""
    bad = [{"role": "user", "content": "a\udcff"}]
    events = [event async for event in stories_backend.stream(bad, GenerationParams(max_tokens=4))]
    [done] = events
    assert done.reason == "error" and done.tokens == 0 and done.error.startswith("TypeError: ")
    tokens, again = run(stories_backend, max_tokens=3)
    assert again.reason == "length" and len(tokens) == 3


@pytest.mark.parametrize(
    "field, value", [("temperature", math.nan), ("temperature", math.inf), ("top_p", math.nan), ("seed", 2**64), ("max_tokens", 0)]
)
def test_generation_params_refuse_what_no_sampler_can_use(field, value):
    with pytest.raises(ValueError, match=f"{field.replace('_', ' ')} must be"):
        GenerationParams(**{field: value})


def test_teacher_forced_high_gear_perplexity_equals_plain_transformers(stories_backend, stories_hf, tinystories_text):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(stories_hf)
    paragraphs = [p for p in tinystories_text.read_text().split("\n\n") if p.strip()][:8]
    ours, theirs = [], []
    for paragraph in paragraphs:
        ids = stories_backend.encode_text(paragraph.strip())
        ours += stories_backend.teacher_force(ids, GearMode.HIGH).logprobs
        x = torch.tensor([ids])
        logp = torch.log_softmax(plain(x).logits[0, :-1].float(), -1)
        theirs += logp.gather(-1, x[0, 1:, None])[:, 0].tolist()
    assert perplexity(ours) == pytest.approx(perplexity(theirs), rel=1e-3)
    auto = stories_backend.teacher_force(ids, GearMode.AUTO)
    assert len(auto.logprobs) == len(ids) - 1 and len(set(auto.gears)) >= 2


def test_tiny_random_llama_loads_and_generates(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu")
    backend.load()
    assert backend.geared_layers == 2 * 4
    tokens, done = run(backend, GearMode.AUTO, max_tokens=8, messages=[{"role": "user", "content": "Once upon"}])
    assert done.tokens == len(tokens) <= 8
    assert backend.memory_bytes() > sum(p.numel() * 4 for p in backend.model.parameters())


def test_a_gguf_load_moves_its_bar_as_the_tensors_are_dequantized():
    """transformers dequantizes a GGUF's tensors one by one under a tqdm bar of its own; the load
    reads its count off it, so that a large file's bar moves instead of sitting at 10% until
    gearing. If transformers' bar changes form, no count comes and this fails."""
    reports = []
    HFBackend(str(_need(STORIES_GGUF)), device="cpu").load(lambda fraction, text: reports.append((fraction, text)))
    counts = [(f, re.search(r"tensor (\d+) of (\d+)$", t)) for f, t in reports if "loading weights" in t]
    counts = [(f, int(m[1]), int(m[2])) for f, m in counts if m]
    assert counts, reports
    assert [f for f, _, _ in counts] == sorted(f for f, _, _ in counts)
    assert all(0.1 <= f <= 0.45 for f, _, _ in counts)
    fraction, n, total = counts[-1]
    assert n == total > 0 and fraction == pytest.approx(0.45)


def test_a_gguf_file_is_parsed_three_times_as_it_loads_and_once_the_next_time(monkeypatch, tmp_path):
    """gguf's reader parses every field of the file, a chat model's whole vocabulary with them
    (3-4 s for SmolLM2's on two cores): a first load parses it once for the config, once for the
    tokenizer and once for the weights, and not again for the weights' config. The config and
    tokenizer are then kept (backends.gguf_kept): the next load parses the file for its weights
    alone, and replies as the first did."""
    import gguf

    from gearterm.backends import gguf_kept

    parsed = []

    class Counted(gguf.GGUFReader):
        def __init__(self, path, *args, **kwargs):
            parsed.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", Counted)  # transformers imports it from gguf as it loads
    monkeypatch.setattr(gguf_kept, "kept_root", lambda: tmp_path)
    replies = []
    for parses in (3, 1):
        parsed.clear()
        backend = HFBackend(str(_need(STORIES_GGUF)), device="cpu")
        backend.load()
        assert parsed == [str(STORIES_GGUF)] * parses
        replies.append([t.token_id for t in run(backend, max_tokens=12)[0]])
    assert replies[0] == replies[1]
