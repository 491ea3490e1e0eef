"""The MLX backend on Linux CPU with real mlx[cpu], mlx-lm and the stories260K model."""

import math
import threading

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core", reason="mlx is not importable here: install gearterm[mlx]")
mlx_lm = pytest.importorskip("mlx_lm", reason="mlx-lm is not importable here: install gearterm[mlx]")
nn = pytest.importorskip("mlx.nn")

from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent  # noqa: E402
from gearterm.backends.gearbox import GearMode  # noqa: E402
from gearterm.kernels.gear import GearSelector  # noqa: E402
from gearterm.backends.mlx import MLXBackend  # noqa: E402
from gearterm.backends.mlx_geared_linear import GROUP_SIZE, GearedLinear  # noqa: E402
from gearterm.kernels.gear import Gear  # noqa: E402
from gearterm.kernels.mlx_entropy import entropy_varentropy  # noqa: E402

from conftest import SMOLLM2, _need  # noqa: E402

PROMPT = [{"role": "user", "content": "Once upon a time"}]


@pytest.fixture(scope="module")
def backend(stories_hf) -> MLXBackend:
    b = MLXBackend(str(stories_hf))
    b.load()
    return b


def run(backend, max_tokens=100, **params):
    events = list(backend.generate(PROMPT, GenerationParams(max_tokens=max_tokens, **params)))
    tokens = [e for e in events if isinstance(e, TokenEvent) and e.token_id is not None]
    assert isinstance(events[-1], ReplyDone)
    return tokens, events[-1]


def entropy_numpy(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = logits.astype(np.float64)
    logp = x - x.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    p = np.exp(logp)
    h = -(p * logp).sum(-1)
    return h / math.log(2), ((p * logp * logp).sum(-1) - h * h) / math.log(2) ** 2


def test_forced_high_greedy_equals_mlx_lm_generate(backend, stories_hf):
    tokens, done = run(backend, gear_mode=GearMode.HIGH)
    model, tokenizer = mlx_lm.load(str(stories_hf))
    reference = [r.token for r in mlx_lm.stream_generate(model, tokenizer, "Once upon a time", max_tokens=100)]
    assert done.reason == "length"
    assert [t.token_id for t in tokens] == reference
    assert "".join(t.text for t in tokens).startswith(", there was a little girl named Lily.")


def test_forced_high_greedy_equals_the_transformers_backend(backend, stories_hf):
    from gearterm.backends.hf import HFBackend

    hf = HFBackend(str(stories_hf), device="cpu")
    hf.load()
    params = GenerationParams(max_tokens=100, gear_mode=GearMode.HIGH)
    hf_ids = [e.token_id for e in hf.generate(PROMPT, params) if isinstance(e, TokenEvent) and e.token_id is not None]
    tokens, _ = run(backend, gear_mode=GearMode.HIGH)
    assert len(hf_ids) == 100
    assert [t.token_id for t in tokens] == hf_ids
    # Same text scored both ways: the two runtimes agree to float32 rounding.
    ids = backend.encode_text("Once upon a time, there was a little dog. He liked to run.")
    ours, theirs = backend.teacher_force(ids, GearMode.HIGH), hf.teacher_force(ids, GearMode.HIGH)
    assert ours.top1 == theirs.top1
    np.testing.assert_allclose(ours.logprobs, theirs.logprobs, atol=1e-4)


@pytest.mark.parametrize("mode", [GearMode.LOW, GearMode.MID, GearMode.HIGH])
def test_each_forced_gear_produces_text_and_an_entropy_per_token(backend, mode):
    tokens, done = run(backend, max_tokens=30, gear_mode=mode)
    assert len(tokens) == 30 and done.stats["shifts"] == 0
    assert "".join(t.text for t in tokens).strip()
    assert {t.gear for t in tokens} == {mode.forced_gear}
    assert all(math.isfinite(t.entropy_bits) and 0 <= t.entropy_bits <= 9 for t in tokens)
    assert all(math.isfinite(t.varentropy_bits2) and t.logprob <= 0 for t in tokens)


def test_low_and_mid_gears_change_the_distribution_high_does_not(backend):
    by_mode = {mode: run(backend, max_tokens=5, gear_mode=mode)[0] for mode in (GearMode.LOW, GearMode.MID, GearMode.HIGH)}
    first = {mode: tokens[0].entropy_bits for mode, tokens in by_mode.items()}
    # The first token comes from the prefill, which runs at the forced gear.
    assert first[GearMode.LOW] != first[GearMode.HIGH] and first[GearMode.MID] != first[GearMode.HIGH]
    assert abs(first[GearMode.MID] - first[GearMode.HIGH]) < abs(first[GearMode.LOW] - first[GearMode.HIGH])


def test_auto_mode_shifts_on_a_story_and_each_step_runs_the_gear_chosen_before(backend):
    tokens, done = run(backend, max_tokens=100, gear_mode=GearMode.AUTO)
    gears = [t.gear for t in tokens]
    assert done.stats["shifts"] >= 1 and len(set(gears)) >= 2
    assert gears[0] == Gear.HIGH  # the prefill, and so the first token, runs at the high gear
    assert all(t.next_gear == after.gear for t, after in zip(tokens, tokens[1:]))


def test_entropy_equals_numpy_on_the_logits_of_the_generated_sequence(backend):
    tokens, _ = run(backend, max_tokens=40, gear_mode=GearMode.HIGH)
    ids = backend.encode_chat(PROMPT) + [t.token_id for t in tokens]
    backend.selector.gear = Gear.HIGH
    logits = np.array(backend.model(mx.array([ids]))[0].astype(mx.float32))
    # The logits after prompt position i produce generated token i.
    h, v = entropy_numpy(logits[len(ids) - len(tokens) - 1 : -1])
    np.testing.assert_allclose([t.entropy_bits for t in tokens], h, atol=1e-4)
    np.testing.assert_allclose([t.varentropy_bits2 for t in tokens], v, atol=1e-3, rtol=1e-3)
    logp = logits - np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
    chosen = logp[np.arange(len(ids) - len(tokens) - 1, len(ids) - 1), [t.token_id for t in tokens]]
    np.testing.assert_allclose([t.logprob for t in tokens], chosen, atol=1e-4)


def test_entropy_kernel_matches_numpy_and_flags_bad_logits():
    logits = np.random.default_rng(0).normal(0, 4, size=(6, 512)).astype(np.float32)
    logits[0, :] = 0.0  # uniform: exactly 9 bits
    logits[1, 7] = 80.0  # nearly one-hot
    h, v = entropy_varentropy(mx.array(logits))
    ref_h, ref_v = entropy_numpy(logits)
    np.testing.assert_allclose(np.array(h), ref_h, atol=1e-4)
    np.testing.assert_allclose(np.array(v), ref_v, atol=1e-3, rtol=1e-3)
    assert abs(h[0].item() - 9.0) < 1e-4
    logits[2, 3] = np.inf
    logits[3, 4] = np.nan
    h, _ = entropy_varentropy(mx.array(logits))
    assert math.isnan(h[2].item()) and math.isnan(h[3].item()) and math.isfinite(h[4].item())


def test_cancel_stops_within_one_token(backend):
    events = backend.generate(PROMPT, GenerationParams(max_tokens=200, gear_mode=GearMode.AUTO))
    seen = 0
    for event in events:
        if isinstance(event, TokenEvent) and event.token_id is not None:
            seen += 1
            if seen == 5:
                backend.cancel()
        if isinstance(event, ReplyDone):
            break
    assert event.reason == "cancelled" and event.tokens == 5 and seen == 5
    tokens, done = run(backend, max_tokens=10)  # the next reply starts with the flag cleared
    assert done.reason == "length" and len(tokens) == 10


async def test_cancel_from_another_thread_while_streaming(backend):
    received = []
    async for event in backend.stream(PROMPT, GenerationParams(max_tokens=400, gear_mode=GearMode.HIGH)):
        if isinstance(event, TokenEvent) and event.token_id is not None:
            received.append(event)
            if len(received) == 3:
                threading.Thread(target=backend.cancel).start()
        done = event
    assert done.reason == "cancelled"
    assert done.tokens < 400


def test_sampling_is_reproducible_with_a_seed_and_top_p_near_zero_is_greedy(backend):
    a, _ = run(backend, max_tokens=40, temperature=1.0, seed=7, gear_mode=GearMode.HIGH)
    b, _ = run(backend, max_tokens=40, temperature=1.0, seed=7, gear_mode=GearMode.HIGH)
    c, _ = run(backend, max_tokens=40, temperature=1.0, seed=8, gear_mode=GearMode.HIGH)
    greedy, _ = run(backend, max_tokens=40, gear_mode=GearMode.HIGH)
    nucleus, _ = run(backend, max_tokens=40, temperature=1.0, top_p=1e-6, seed=7, gear_mode=GearMode.HIGH)
    ids = lambda tokens: [t.token_id for t in tokens]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c) and ids(a) != ids(greedy)
    assert ids(nucleus) == ids(greedy)


def test_teacher_forcing_auto_runs_each_gear_from_the_previous_entropy(backend):
    ids = backend.encode_text("Once upon a time, there was a big cat. The cat was sad because it had no friends.")
    auto = backend.teacher_force(ids, GearMode.AUTO)
    high = backend.teacher_force(ids, GearMode.HIGH)
    low = backend.teacher_force(ids, GearMode.LOW)
    n = len(ids) - 1
    assert len(auto.logprobs) == len(auto.top1) == len(auto.gears) == n
    assert auto.gears[0] == Gear.HIGH and set(high.gears) == {Gear.HIGH} and set(low.gears) == {Gear.LOW}
    assert auto.shifts == sum(a != b for a, b in zip(auto.gears, auto.gears[1:])) >= 1
    # Until its first shift down, auto ran exactly what the forced high gear ran.
    same = auto.gears.index(next(g for g in auto.gears if g != Gear.HIGH))
    np.testing.assert_allclose(auto.logprobs[:same], high.logprobs[:same], atol=1e-4)
    assert auto.logprobs[same] != high.logprobs[same]
    assert sum(low.logprobs) != sum(high.logprobs)


def test_geared_linear_high_is_bit_exact_and_low_mid_match_dequantized_weights():
    selector = GearSelector()
    linear = nn.Linear(172, 48, bias=True)  # 172 input channels: not a whole number of groups
    geared = GearedLinear(linear, selector)
    assert geared.pad == 192 - 172
    x = mx.random.normal((3, 172), key=mx.random.key(0))
    selector.gear = Gear.HIGH
    assert mx.array_equal(geared(x), linear(x))
    errors = {}
    for gear, bits in ((Gear.LOW, 4), (Gear.MID, 8)):
        q = geared[gear.label]
        w = mx.dequantize(q["codes"], q["scales"], q["biases"], group_size=GROUP_SIZE, bits=bits)
        assert w.shape == (48, 192)
        selector.gear = gear
        # Only the 172 real columns count: the input's zero padding cancels the rest.
        np.testing.assert_allclose(np.array(geared(x)), np.array(x @ w[:, :172].T + linear.bias), atol=1e-4)
        errors[gear] = mx.abs(w[:, :172] - linear.weight).max().item()
    assert 0 < errors[Gear.MID] < errors[Gear.LOW]


def test_every_decoder_projection_is_geared_and_all_gears_stay_resident(backend):
    from mlx.utils import tree_flatten

    geared = [m for layer in backend.model.layers for _, m in tree_flatten(layer.leaf_modules(), is_leaf=nn.Module.is_module)]
    kinds = [type(m).__name__ for m in geared]
    assert "Linear" in kinds  # the high gears, inside the GearedLinears
    assert backend.gearing.geared == 5 * 7  # q, k, v, o, gate, up, down in each of 5 layers
    assert backend.gearing.padded == ("mlp.down_proj (in 172 -> 192)",)
    assert "zero-padded" in backend.gearing.describe()
    assert backend.capabilities.geared_share == 1.0  # every projection weight of every layer
    assert isinstance(backend.model.model.embed_tokens, nn.Embedding)  # embeddings stay as loaded
    nbytes = backend.gearing.nbytes
    assert nbytes[Gear.LOW] < nbytes[Gear.MID] < nbytes[Gear.HIGH]
    params = sum(a.nbytes for _, a in tree_flatten(backend.model.parameters()))
    assert backend.memory_bytes() == params
    assert backend.memory_bytes() >= nbytes[Gear.LOW] + nbytes[Gear.MID] + nbytes[Gear.HIGH]
    _, done = run(backend, max_tokens=5)
    assert done.stats["peak_memory_bytes"] >= done.stats["active_memory_bytes"] > 0


def test_power_says_why_there_is_no_reading_off_apple_silicon(backend):
    import platform

    if (platform.system(), platform.machine()) == ("Darwin", "arm64"):
        pytest.skip("on Apple Silicon the reading depends on the IOReport reader installed")
    watts, reason = backend.power_reading()
    assert watts is None and "not Apple Silicon" in reason


def test_the_cli_runs_the_mlx_backend(stories_hf, capsys):
    from gearterm.backends.registry import available_backends
    from gearterm.cli import main

    assert "mlx" in available_backends()
    code = main(["run", "--backend", "mlx", "--model", str(stories_hf), "--prompt", "Once upon a time",
                 "--gear", "high", "--max-tokens", "12"])
    out = capsys.readouterr()
    assert code == 0
    assert out.out.startswith(", there was a little girl named Lily.")
    assert "[mlx " in out.err and "high 100%" in out.err


@pytest.mark.slow
def test_smollm2_as_transformers_5_saves_it_runs_the_same_model_on_mlx(tmp_path):
    """SmolLM2's rope theta is 100,000, written by transformers 5 under rope_parameters only:
    mlx-lm alone would fall back to 10,000 and run another model. The directory is the GGUF
    file dequantized and saved by transformers, as a user converting it would get."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from gearterm.backends.hf import HFBackend
    from gearterm.backends.mlx import mlx_model_config

    name = _need(SMOLLM2).name
    model = AutoModelForCausalLM.from_pretrained(
        SMOLLM2.parent, gguf_file=name, dtype=torch.float32, quantization_config=GgufConfig(gguf_file=name, dequantize=True)
    )
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(SMOLLM2.parent, gguf_file=name).save_pretrained(tmp_path)
    assert "rope_theta" not in (tmp_path / "config.json").read_text().split('"rope_parameters"')[0]
    assert mlx_model_config(tmp_path)["rope_theta"] == 100000.0
    question = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
    params = GenerationParams(max_tokens=100, gear_mode=GearMode.HIGH)
    replies = []
    for backend in (MLXBackend(str(tmp_path)), HFBackend(str(tmp_path), device="cpu")):
        backend.load()
        replies.append([e.token_id for e in backend.generate(question, params) if isinstance(e, TokenEvent) and e.token_id is not None])
    assert len(replies[0]) >= 50
    assert replies[0] == replies[1]


def test_a_reply_is_continued_through_the_chat_template():
    """A last message of the assistant's is continued: the prompt ends with its text (no end of
    turn), and 8 tokens continued by 8 more read as the greedy reply of 16 (the pocket model,
    whose chat template ends every message with </s>)."""
    from gearterm.models import POCKET_MODEL_DIR

    pocket = MLXBackend(str(POCKET_MODEL_DIR))
    pocket.load()
    question = [{"role": "user", "content": "Tell me a story of the king and his daughter."}]  # 18 tokens

    def text(messages, max_tokens):
        events = pocket.generate(messages, GenerationParams(max_tokens=max_tokens, gear_mode=GearMode.HIGH))
        return "".join(e.text for e in events if isinstance(e, TokenEvent))

    first = text(question, 8)
    continuing = [*question, {"role": "assistant", "content": first}]
    prompt = pocket.encode_chat(continuing)
    assert prompt[-1] not in pocket.eos_ids
    assert pocket.tokenizer.decode(prompt).endswith(first.strip())
    assert first + text(continuing, 8) == text(question, 16)


def test_greedy_lossless_equals_forced_high_for_200_tokens(backend):
    high, _ = run(backend, max_tokens=200, gear_mode=GearMode.HIGH)
    lossless, done = run(backend, max_tokens=200, gear_mode=GearMode.LOSSLESS)
    assert [t.token_id for t in lossless] == [t.token_id for t in high]
    assert sum(t.kept_from == "draft" for t in lossless) == done.stats["accepted"] > 50
