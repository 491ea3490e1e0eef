"""Stacked q/k/v and gate/up projections give the model's own outputs in every gear.

On the CPU the stacked attention goes through transformers' configured attention function
(the decode kernel is GPU-only and tested on its own in tests/kernels); what is checked here
is the stacking, the patched forwards and that gearing a stacked matrix packs the same codes."""

import copy

import pytest
import torch

from gearterm.backends.fused_projections import stack_projections
from gearterm.backends.geared_linear import GearedLinear, decoder_layers, gear_decoder_layers
from gearterm.kernels.gear import Gear, GearSelector


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _logits(model, ids: list[int]) -> list[torch.Tensor]:
    """Logits of a prompt in one pass, then of three decode steps over the KV cache."""
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        out = [model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True).logits[0]]
        for token in (5, 17, 3):
            out.append(model(input_ids=torch.tensor([[token]]), cache=cache, use_cache=True).logits[0])
    return out


def test_stacked_model_gives_the_same_logits(tiny_llama):
    stacked = copy.deepcopy(tiny_llama)
    layers = decoder_layers(stacked, 2)
    assert stack_projections(layers) == 4  # an attention and an MLP a layer
    attn, mlp = layers[0].self_attn, layers[0].mlp
    assert attn.qkv_proj.out_features == 64 + 2 * 32 and not hasattr(attn, "q_proj")
    assert mlp.gate_up_proj.out_features == 2 * 160 and not hasattr(mlp, "up_proj")
    for got, expected in zip(_logits(stacked, [1, 2, 3, 4]), _logits(tiny_llama, [1, 2, 3, 4])):
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("gear", list(Gear), ids=lambda g: g.label)
def test_geared_stacked_model_matches_geared_separate_one(tiny_llama, gear):
    """Each row is quantized on its own, so the stacked planes are the separate planes one
    above the other: same codes, same gears, same logits."""
    separate, stacked = copy.deepcopy(tiny_llama), copy.deepcopy(tiny_llama)
    stack_projections(decoder_layers(stacked, 2))
    selectors = GearSelector(gear), GearSelector(gear)
    assert gear_decoder_layers(decoder_layers(separate, 2), selectors[0]) == 2 * 7
    assert gear_decoder_layers(decoder_layers(stacked, 2), selectors[1]) == 2 * 4
    qkv = decoder_layers(stacked, 2)[1].self_attn.qkv_proj
    q = decoder_layers(separate, 2)[1].self_attn.q_proj
    assert isinstance(qkv, GearedLinear) and torch.equal(qkv.h_codes[: q.out_features], q.h_codes)
    for got, expected in zip(_logits(stacked, [7, 8, 9]), _logits(separate, [7, 8, 9])):
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
