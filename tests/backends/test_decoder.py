"""gearterm's decoder against transformers, the oracle: per family a tiny random model that
transformers builds and saves, read back by backends.decoder_weights; forced-high greedy
tokens equal transformers' generate() and the logits match in float32."""

import copy

import pytest
import torch

from gearterm.backends.decoder_weights import load_decoder, shape_of
from gearterm.bench.families import family_configs, save_random_model

# The families `gearterm bench families` times, at a width of 64.
TINY = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256)
CONFIGS = dict(family_configs(TINY))


@pytest.fixture(scope="module", params=list(CONFIGS))
def family(request, tmp_path_factory):
    """(transformers' model, gearterm's decoder) on the same saved random weights."""
    from transformers import AutoConfig

    path = tmp_path_factory.mktemp(request.param)
    config = CONFIGS[request.param]
    config._attn_implementation = "eager"
    reference = save_random_model(config, path)
    loaded = AutoConfig.from_pretrained(path)
    decoder = load_decoder(path, loaded, torch.float32, "cpu")
    decoder.allocate(128)
    return reference, decoder


PROMPT = [1, 5, 17, 33, 9, 70, 12, 3, 44, 101]


def test_logits_match_transformers_on_a_prompt_then_one_step(family):
    reference, decoder = family
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        expected = reference(ids[None]).logits[0]
        got = torch.cat([decoder(ids[:7], 0), decoder(ids[7:], 7)])
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_greedy_tokens_equal_generate_for_64_tokens(family):
    reference, decoder = family
    with torch.no_grad():
        expected = reference.generate(torch.tensor([PROMPT]), max_new_tokens=64, do_sample=False,
                                      min_new_tokens=64)[0, len(PROMPT):].tolist()
        logits = decoder(torch.tensor(PROMPT), 0)[-1]
        got, pos = [], len(PROMPT)
        for _ in range(64):
            logits[2] = float("-inf")  # min_new_tokens does the same to transformers' end of sequence
            got.append(int(logits.argmax()))
            logits = decoder(torch.tensor(got[-1:]), pos)[-1]
            pos += 1
    assert got == expected


def test_the_shape_says_what_the_family_is(family):
    reference, decoder = family
    s = decoder.shape
    assert s.family == reference.config.model_type
    assert shape_of(reference.config).num_layers == 2
    assert decoder.lm_head.weight.data_ptr() == decoder.embed.weight.data_ptr() or not s.tie_embeddings


def test_a_step_at_a_tensor_index_equals_one_at_an_int_index(family):
    """The decode step a CUDA graph captures (position held in a tensor, whole cache read
    under a mask) gives the eager step's logits and advances nothing itself."""
    _, decoder = family
    with torch.no_grad():
        decoder(torch.tensor(PROMPT), 0)
        at_int = decoder(torch.tensor([7]), len(PROMPT))
        decoder(torch.tensor(PROMPT), 0)
        at_tensor = decoder(torch.tensor([7]), torch.tensor([len(PROMPT)]))
    torch.testing.assert_close(at_tensor, at_int, atol=1e-5, rtol=1e-5)


def test_a_verify_pass_at_a_tensor_index_equals_one_at_an_int_index(family):
    """Lossless mode's verify pass as a CUDA graph captures it (several positions at a
    position held in a tensor): the logits of the eager pass, and the same cache after it."""
    _, decoder = family
    drafts = torch.tensor([7, 30, 2, 99])
    with torch.no_grad():
        decoder(torch.tensor(PROMPT), 0)
        at_int = decoder(drafts, len(PROMPT))
        cache_int = [c.k[:, : len(PROMPT) + 4].clone() for c in decoder.caches]
        decoder(torch.tensor(PROMPT), 0)
        at_tensor = decoder(drafts, torch.tensor([len(PROMPT)]))
    torch.testing.assert_close(at_tensor, at_int, atol=1e-5, rtol=1e-5)
    for c, expected in zip(decoder.caches, cache_int):
        torch.testing.assert_close(c.k[:, : len(PROMPT) + 4], expected)


def test_every_projection_is_geared_and_each_gear_computes_its_own_logits(family):
    """Geared in place: every projection of every layer (each expert's too), none of the
    routers, embeddings or LM head; forced high stays what it was, low and mid move."""
    from torch import nn

    from gearterm.backends.decoder import Router
    from gearterm.backends.geared_linear import GearedLinear, gear_decoder_layers, geared_share
    from gearterm.kernels.gear import Gear, GearSelector

    _, decoder = family
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        before = decoder(ids, 0)
    geared = copy.deepcopy(decoder)
    selector = GearSelector(Gear.HIGH)
    swapped = gear_decoder_layers(geared.layers, selector)
    assert geared_share(geared.layers) == 1.0
    assert not any(type(m) is nn.Linear for m in geared.layers.modules())
    assert all(not isinstance(m, GearedLinear) for m in geared.modules() if isinstance(m, Router))
    assert not isinstance(geared.lm_head, GearedLinear)
    s = decoder.shape
    routed_mlp = 2 * s.num_experts + (2 if s.shared_expert_intermediate_size else 0)  # gate_up and down each
    mlps = [routed_mlp if s.moe_layers and s.moe_layers[i] else 2 for i in range(s.num_layers)]
    assert swapped == sum(2 + m for m in mlps)  # qkv and o, then the MLP's
    logits = {}
    with torch.no_grad():
        for gear in Gear:
            selector.gear = gear
            logits[gear] = geared(ids, 0)
    torch.testing.assert_close(logits[Gear.HIGH], before)
    for gear in (Gear.LOW, Gear.MID):
        assert not torch.allclose(logits[gear], before, atol=1e-4), gear
    # The mid gear holds 8 bits of each weight, the low gear 4: mid lands nearer the original.
    assert (logits[Gear.MID] - before).abs().mean() < (logits[Gear.LOW] - before).abs().mean()


def test_a_long_prompt_in_chunks_gives_the_logits_of_one_pass(family, monkeypatch):
    """Chunked prefill (each chunk attending to the cache the chunks before it wrote) equals
    the one-pass forward; `keep` returns just the last positions' logits."""
    from gearterm.backends import decoder as module

    _, decoder = family
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        whole = decoder(ids, 0)
        monkeypatch.setattr(module, "PREFILL_CHUNK", 3)
        chunked = decoder(ids, 0)
        last = decoder(ids, 0, keep=4)
        after = decoder(torch.tensor([7]), len(PROMPT))  # the cache the chunks wrote serves the next step
        monkeypatch.setattr(module, "PREFILL_CHUNK", 2048)
        decoder(ids, 0)
        expected_after = decoder(torch.tensor([7]), len(PROMPT))
    torch.testing.assert_close(chunked, whole, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(last, whole[-4:], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(after, expected_after, atol=2e-5, rtol=1e-4)


def test_reading_a_prompt_gives_the_last_logits_and_every_entropy_of_one_pass(family, monkeypatch):
    """read_prompt (what a reply's prefill asks for) equals the entropies and last logits of
    the one-pass forward, while the LM head never sees more than HEAD_ROWS positions."""
    from gearterm.backends import decoder as module
    from gearterm.kernels.entropy import entropy_varentropy

    _, decoder = family
    ids = torch.tensor(PROMPT)
    heights = []
    with torch.no_grad():
        whole = decoder(ids, 0)
        monkeypatch.setattr(module, "PREFILL_CHUNK", 4)
        monkeypatch.setattr(module, "HEAD_ROWS", 3)
        head = module.linear  # the LM head's multiply

        def measured_head(x, weight):
            heights.append(x.shape[0])
            return head(x, weight)

        monkeypatch.setattr(module, "linear", measured_head)
        last, entropies = decoder.read_prompt(ids, 0)
    assert heights == [3, 1, 3, 1, 2]  # chunks of 4, 4 and 2 positions, each in blocks of 3
    torch.testing.assert_close(last, whole[-1], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(entropies, entropy_varentropy(whole)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("width", [24, 20])
def test_the_mlp_reads_gate_and_up_rows_in_the_order_the_loader_stacks_them(width):
    """The loader stacks gate and up rows in alternating tiles of 8 where the width allows it
    (24), all gate rows then all up rows where not (20); either way the MLP computes
    down(SiLU(x gate^T) * x up^T)."""
    import torch.nn.functional as F

    from gearterm.backends.decoder import MLP, Shape, tile_gate_up

    s = Shape("llama", 10, 16, width, 1, 2, 2, 8, 1e-5, "silu")
    torch.manual_seed(width)
    gate, up, down, x = torch.randn(width, 16), torch.randn(width, 16), torch.randn(16, width), torch.randn(3, 16)
    stacked = tile_gate_up(torch.cat([gate, up]))
    assert torch.equal(stacked[8:16], up[:8]) == (width == 24) and torch.equal(stacked[:width], gate) == (width == 20)
    mlp = MLP(s)
    mlp.gate_up.weight.data, mlp.down.weight.data = stacked, down
    torch.testing.assert_close(mlp(x), F.silu(x @ gate.T) * (x @ up.T) @ down.T)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_rotating_q_and_k_in_rotary_tiles_gives_the_same_numbers_in_that_order(dtype):
    """The experiment QKV_EPILOGUE's layout: a head's dims in rotary_order (48 dims, 32 rotating:
    Phi's partial rotary), rotated by rotate(tiled=True): the values rotate() gives in the
    original order, bit for bit, permuted."""
    from gearterm.backends.decoder import Shape, rotary_order, rotate

    s = Shape("phi3", 10, 16, 24, 1, 2, 2, 48, 1e-5, "silu", rotary_dim=32)
    order = rotary_order(s)
    assert sorted(order.tolist()) == list(range(48)) and order[:16].tolist() == [*range(8), *range(16, 24)]
    torch.manual_seed(0)
    x = torch.randn(3, 2, 48).to(dtype)
    angles = torch.randn(3, 16)
    cos, sin = (torch.cat([f(angles)] * 2, -1).to(dtype) for f in (torch.cos, torch.sin))
    assert torch.equal(rotate(x[..., order], cos, sin, tiled=True), rotate(x, cos, sin)[..., order])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_q_and_k_rows_in_rotary_tiles_give_transformers_logits(name, tmp_path, monkeypatch):
    """With the experiment QKV_EPILOGUE on, the loader puts each head's q and k rows (and q/k
    norm weights) in rotary_order and the decoder rotates them there: the logits stay
    transformers'."""
    from transformers import AutoConfig

    from gearterm.backends import decoder as decoder_module

    monkeypatch.setattr(decoder_module, "QKV_EPILOGUE", True)
    config = copy.deepcopy(CONFIGS[name])
    config._attn_implementation = "eager"
    config.num_attention_heads, config.num_key_value_heads = 2, 1  # heads of 32 dims: two tiles each
    if getattr(config, "head_dim", None):
        config.head_dim = 32
    reference = save_random_model(config, tmp_path)
    decoder = load_decoder(tmp_path, AutoConfig.from_pretrained(tmp_path), torch.float32, "cpu")
    assert decoder.shape.rotary_tiles and not torch.equal(decoder_module.rotary_order(decoder.shape), torch.arange(32))
    decoder.allocate(128)
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        expected = reference(ids[None]).logits[0]
        got = torch.cat([decoder(ids[:7], 0), decoder(ids[7:], 7)])
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
