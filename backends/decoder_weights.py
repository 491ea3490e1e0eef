"""From a Hugging Face config and checkpoint to gearterm's decoder (backends.decoder).

The config's fields become a `Shape`; the checkpoint's tensors are read with safetensors and
renamed into the decoder's modules (q, k and v stacked, gate and up stacked). transformers
supplies the config classes and the rotary frequencies of scaled rope types.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import torch

from gearterm.backends.base import BackendError
from gearterm.backends.decoder import Decoder, Shape, rotary_order, tile_gate_up, tile_rotary, tiles_rotary

# model_type -> what the families' configs call things differently
FAMILIES = {
    "llama": "Llama 2/3/3.1/3.2",
    "mistral": "Mistral",
    "qwen2": "Qwen2/2.5",
    "qwen3": "Qwen3",
    "gemma2": "Gemma 2",
    "gemma3_text": "Gemma 3",
    "phi3": "Phi-3",
    "mixtral": "Mixtral",
    "qwen2_moe": "Qwen2-MoE",
    "qwen3_moe": "Qwen3-MoE",
}
# Rope types whose frequencies change with the sequence's length: not run yet.
LENGTH_DEPENDENT_ROPE = {"dynamic", "longrope"}
FULL_PRECISION = "embeddings, norms, routers and the LM head"


def supported(config) -> bool:
    return config.model_type in FAMILIES


def shape_of(config) -> Shape:
    """The decoder's structure as this family's config describes it."""
    family = config.model_type
    if family not in FAMILIES:
        raise BackendError(
            f"gearterm does not gear {family} models; it gears {', '.join(FAMILIES.values())}"
        )
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    gemma = family.startswith("gemma")
    attention_bias = bool(getattr(config, "attention_bias", False))
    qkv_bias = family in ("qwen2", "qwen2_moe") and getattr(config, "qkv_bias", True)
    layer_types = getattr(config, "layer_types", None)
    window = getattr(config, "sliding_window", None)
    if layer_types:
        sliding = tuple(t == "sliding_attention" for t in layer_types)
    else:  # Mistral, Phi-3: one window for every layer, when the config sets one
        sliding = (window is not None,) * config.num_hidden_layers
    partial = _rope_params(config, None).get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0))
    activation = getattr(config, "hidden_activation", None) or config.hidden_act
    return Shape(
        family=family,
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        head_dim=head_dim,
        norm_eps=getattr(config, "rms_norm_eps", 1e-6),
        activation="silu" if activation == "silu" else "gelu_tanh",
        attention_bias=qkv_bias or attention_bias,
        output_bias=attention_bias and family not in ("qwen2", "qwen2_moe"),
        mlp_bias=bool(getattr(config, "mlp_bias", False)),
        qk_norm=family in ("qwen3", "qwen3_moe", "gemma3_text"),
        norm_plus_one=gemma,
        sandwich_norms=gemma,
        embed_scale=config.hidden_size**0.5 if gemma else 1.0,
        attention_scale=config.query_pre_attn_scalar**-0.5 if gemma else None,
        attention_softcap=getattr(config, "attn_logit_softcapping", None) if gemma else None,
        final_softcap=getattr(config, "final_logit_softcapping", None) if gemma else None,
        sliding_window=window,
        sliding_layers=sliding,
        rotary_dim=int(head_dim * partial),
        rotary_tiles=tiles_rotary(int(head_dim * partial)),
        tie_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        max_positions=getattr(config, "max_position_embeddings", 2048),
        **_experts(config),
    )


def _experts(config) -> dict:
    """The mixture-of-experts fields of Shape, as Mixtral's and Qwen's MoE configs name them."""
    experts = getattr(config, "num_local_experts", None) or getattr(config, "num_experts", None) or 0
    if not experts:
        return {}
    if config.model_type == "mixtral":
        width, shared, normalize = config.intermediate_size, 0, True
        routed = [True] * config.num_hidden_layers
    else:
        width = config.moe_intermediate_size
        shared = getattr(config, "shared_expert_intermediate_size", 0) or 0
        normalize = bool(config.norm_topk_prob)
        step, dense = getattr(config, "decoder_sparse_step", 1) or 1, set(getattr(config, "mlp_only_layers", None) or [])
        routed = [i not in dense and (i + 1) % step == 0 for i in range(config.num_hidden_layers)]
    return dict(
        num_experts=experts,
        experts_per_token=config.num_experts_per_tok,
        expert_intermediate_size=width,
        shared_expert_intermediate_size=shared,
        normalize_top_k=normalize,
        moe_layers=tuple(routed),
    )


def _rope_params(config, layer_type: str | None) -> dict:
    params = getattr(config, "rope_parameters", None) or {}
    if layer_type is not None and layer_type in params:  # Gemma 3: one set per layer type
        return params[layer_type]
    return params


def rotary_frequencies(config, shape: Shape) -> tuple[list[torch.Tensor], list[float]]:
    """Per layer: the rotary inverse frequencies and the factor on cos and sin."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    layer_types = getattr(config, "layer_types", None) or [None] * shape.num_layers
    per_type = {}
    for layer_type in dict.fromkeys(layer_types):
        params = _rope_params(config, layer_type)
        rope_type = params.get("rope_type", "default")
        if rope_type in LENGTH_DEPENDENT_ROPE:
            raise BackendError(f"rope type {rope_type!r} changes with the sequence's length; gearterm does not run it yet")
        if rope_type == "default":
            dim = shape.rotary_dim
            theta = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
            per_type[layer_type] = (1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim), 1.0)
        else:
            kwargs = {"layer_type": layer_type} if layer_type in (getattr(config, "rope_parameters", None) or {}) else {}
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, "cpu", **kwargs)
            per_type[layer_type] = (inv_freq.float(), float(scaling))
    return [per_type[t][0] for t in layer_types], [per_type[t][1] for t in layer_types]


def _checkpoint(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors = {}
    for f in sorted(path.glob("*.safetensors")):
        tensors.update(load_file(f))
    if not tensors:  # pickle weights: backends.model_files lets them through only when asked
        for f in sorted(path.glob("*.bin")):
            tensors.update(torch.load(f, map_location="cpu", weights_only=True))
    if not tensors:
        raise BackendError(f"{path} holds no weights (no *.safetensors files)")
    # Multimodal checkpoints keep the text decoder under language_model.
    return {k.replace("language_model.model.", "model.").replace("model.language_model.", "model."): v for k, v in tensors.items()}


def decoder_state(hf: dict[str, torch.Tensor], shape: Shape) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under the decoder's names, stacked where it stacks them."""

    def take(name: str) -> torch.Tensor:
        try:
            return hf[name]
        except KeyError:
            raise BackendError(f"the checkpoint has no tensor {name}") from None

    out = {"embed.weight": take("model.embed_tokens.weight"), "norm.weight": take("model.norm.weight")}
    out["lm_head.weight"] = out["embed.weight"] if shape.tie_embeddings else take("lm_head.weight")
    for i in range(shape.num_layers):
        src, dst = f"model.layers.{i}.", f"layers.{i}."
        attn, mlp = src + "self_attn.", src + "mlp."
        out[dst + "attn_norm.weight"] = take(src + "input_layernorm.weight")
        if shape.sandwich_norms:
            out[dst + "post_attn_norm.weight"] = take(src + "post_attention_layernorm.weight")
            out[dst + "mlp_norm.weight"] = take(src + "pre_feedforward_layernorm.weight")
            out[dst + "post_mlp_norm.weight"] = take(src + "post_feedforward_layernorm.weight")
        else:
            out[dst + "mlp_norm.weight"] = take(src + "post_attention_layernorm.weight")
        if shape.moe_layers and shape.moe_layers[i]:
            out.update(_expert_state(hf, src, dst, shape, take))
        for kind in ("weight", "bias"):
            if attn + f"qkv_proj.{kind}" in hf:  # Phi-3 stores them stacked already
                out[dst + f"attn.qkv.{kind}"] = hf[attn + f"qkv_proj.{kind}"]
            elif attn + f"q_proj.{kind}" in hf:
                out[dst + f"attn.qkv.{kind}"] = torch.cat([take(attn + f"{p}_proj.{kind}") for p in "qkv"])
            if attn + f"o_proj.{kind}" in hf:
                out[dst + f"attn.o.{kind}"] = hf[attn + f"o_proj.{kind}"]
            if mlp + f"gate_up_proj.{kind}" in hf:
                out[dst + f"mlp.gate_up.{kind}"] = hf[mlp + f"gate_up_proj.{kind}"]
            elif mlp + f"gate_proj.{kind}" in hf:
                out[dst + f"mlp.gate_up.{kind}"] = torch.cat([take(mlp + f"{p}_proj.{kind}") for p in ("gate", "up")])
            if mlp + f"down_proj.{kind}" in hf:
                out[dst + f"mlp.down.{kind}"] = hf[mlp + f"down_proj.{kind}"]
        if shape.qk_norm:
            out[dst + "attn.q_norm.weight"] = take(attn + "q_norm.weight")
            out[dst + "attn.k_norm.weight"] = take(attn + "k_norm.weight")
    # Every MLP's (experts' and shared ones' too) gate and up rows in the decoder's order; q and k
    # too where the decoder tiles them.
    out = {k: tile_gate_up(v) if k.endswith(("gate_up.weight", "gate_up.bias")) else v for k, v in out.items()}
    if shape.rotary_tiles:
        out = {k: _in_rotary_order(k, v, shape) for k, v in out.items()}
    return out


def _in_rotary_order(name: str, tensor: torch.Tensor, shape: Shape) -> torch.Tensor:
    if name.endswith(("attn.qkv.weight", "attn.qkv.bias")):
        return tile_rotary(tensor, shape)
    if name.endswith(("attn.q_norm.weight", "attn.k_norm.weight")):  # a weight a dim of the head
        return tensor[rotary_order(shape)]
    return tensor


def _expert_state(hf, src: str, dst: str, shape: Shape, take) -> dict[str, torch.Tensor]:
    """One routed layer's router and experts. Checkpoints on disk keep one tensor per expert
    (Mixtral's w1/w3/w2 under block_sparse_moe, Qwen's gate/up/down_proj under mlp);
    transformers' own modules (a GGUF file read through them) hold every expert in one
    [experts, out, in] tensor per projection."""
    mixtral = src + "block_sparse_moe."
    prefix = mixtral if mixtral + "gate.weight" in hf else src + "mlp."
    out = {dst + "mlp.router.weight": take(prefix + "gate.weight")}
    stacked = prefix + "experts.gate_up_proj"
    for e in range(shape.num_experts):
        expert, mine = f"{prefix}experts.{e}.", f"{dst}mlp.experts.{e}."
        if stacked in hf:
            gate_up, down = hf[stacked][e], take(prefix + "experts.down_proj")[e]
        elif prefix == mixtral:
            gate_up, down = torch.cat([take(expert + "w1.weight"), take(expert + "w3.weight")]), take(expert + "w2.weight")
        else:
            gate_up = torch.cat([take(expert + "gate_proj.weight"), take(expert + "up_proj.weight")])
            down = take(expert + "down_proj.weight")
        out[mine + "gate_up.weight"], out[mine + "down.weight"] = gate_up, down
    if shape.shared_expert_intermediate_size:
        shared = prefix + "shared_expert."
        out[dst + "mlp.shared.gate_up.weight"] = torch.cat([take(shared + "gate_proj.weight"), take(shared + "up_proj.weight")])
        out[dst + "mlp.shared.down.weight"] = take(shared + "down_proj.weight")
        out[dst + "mlp.shared_gate.weight"] = take(prefix + "shared_expert_gate.weight")
    return out


def build_decoder(config, tensors: dict[str, torch.Tensor], dtype: torch.dtype, device) -> Decoder:
    """The decoder of `config` holding `tensors` (a checkpoint's, under Hugging Face's names)."""
    shape = shape_of(config)
    inv_freq, scaling = rotary_frequencies(config, shape)
    with torch.device("meta"):
        model = Decoder(shape, inv_freq, scaling)
    state = {k: v.to(device=device, dtype=dtype) for k, v in decoder_state(tensors, shape).items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise BackendError(f"the checkpoint does not fit a {FAMILIES[shape.family]} decoder: {e}") from None
    if shape.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    return model.eval()


class _TensorCount(io.TextIOBase):
    """Where transformers' GGUF converter draws its tqdm bar (stderr, redirected here while it
    runs): each redraw's "n/total" of tensors goes to `counted(n, total)`."""

    def __init__(self, counted) -> None:
        self.counted = counted

    def write(self, text: str) -> int:
        if found := re.findall(r"\| *(\d+)/(\d+) ", text):
            self.counted(*map(int, found[-1]))
        return len(text)


def gguf_tensors(path: Path, gguf_file: str, config, counted=None) -> dict[str, torch.Tensor]:
    """A GGUF file's tensors, dequantized to float32 by transformers, under Hugging Face's names.
    `config` is the file's, already read: given it, transformers does not parse the file again
    (3-4 s a parse of SmolLM2's Q4_1 file on two cores: gguf's reader parses its 49,152-token
    vocabulary). transformers works on a copy: `config` is left as it was. `counted(n, total)` is
    told each time the converter's bar counts a tensor dequantized."""
    from transformers import AutoModelForCausalLM, GgufConfig

    # The converter draws a tqdm bar of its own on stderr: read for its count, not shown (the
    # backend reports the load itself). use_kernels=False here and wherever gearterm loads a
    # transformers model: transformers 5.25 otherwise kernelizes on CUDA with code fetched from
    # the Hub (no network here; not what is measured).
    with contextlib.redirect_stderr(_TensorCount(counted or (lambda n, total: None))):
        model = AutoModelForCausalLM.from_pretrained(
            path, config=config, gguf_file=gguf_file, dtype=torch.float32, local_files_only=True, use_kernels=False,
            quantization_config=GgufConfig(gguf_file=gguf_file, dequantize=True),
        )
    return model.state_dict()


def load_decoder(path: Path, config, dtype: torch.dtype, device, gguf_file: str | None = None, counted=None) -> Decoder:
    """The decoder of the model in directory `path` (safetensors), or of `path / gguf_file`
    (`counted`: as gguf_tensors)."""
    tensors = gguf_tensors(path, gguf_file, config, counted) if gguf_file else _checkpoint(path)
    return build_decoder(config, tensors, dtype, device)

