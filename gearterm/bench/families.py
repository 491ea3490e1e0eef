"""`gearterm bench families`: one random model of every supported family, at a size where the
matrix-vector products, not Python, take the time, decoded on the CPU in the high and the low
gear: tokens/s per gear and the share of the layers' weights each family has geared.

The configurations are the ones the decoder tests check against transformers (there at a
width of 64), so the table and the tests speak of the same families. Weights are random:
speed does not depend on their values; what the text would say does, so none is shown. Their
next-token distributions are near uniform, which the policy's anomaly guard answers with the
high gear in every mode; the guard is off here, so that the low row reads the low gear.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from gearterm.errors import UsageError

# Small enough that every family builds in seconds, large enough (SmolLM2-135M's width, fewer
# layers) that a step is mostly weight reads.
BENCH_SIZE = dict(vocab_size=8192, hidden_size=576, intermediate_size=1536, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=2048)


def family_configs(size: dict):
    """(name, transformers config) for each supported family, each with its own real fields, at
    `size` (vocab_size, hidden_size, intermediate_size, num_hidden_layers, heads, positions)."""
    from transformers import (Gemma2Config, Gemma3TextConfig, LlamaConfig, MistralConfig, MixtralConfig, Phi3Config,
                              Qwen2Config, Qwen2MoeConfig, Qwen3Config, Qwen3MoeConfig)

    common = dict(size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    head_dim = size["hidden_size"] // size["num_attention_heads"]
    expert = size["intermediate_size"] // 2
    window = max(8, size["max_position_embeddings"] // 32)
    yield "llama", LlamaConfig(**common)
    yield "llama-3.1-rope-bias", LlamaConfig(**common, attention_bias=True, rope_parameters={
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": size["max_position_embeddings"] // 8})
    yield "mistral-window", MistralConfig(**common, sliding_window=window)
    yield "qwen2", Qwen2Config(**common, tie_word_embeddings=True)
    yield "qwen2-yarn", Qwen2Config(**common, rope_parameters={
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
        "original_max_position_embeddings": size["max_position_embeddings"] // 4})
    yield "qwen3", Qwen3Config(**common, head_dim=2 * head_dim)
    yield "gemma2", Gemma2Config(**common, head_dim=head_dim, sliding_window=window, query_pre_attn_scalar=head_dim)
    yield "gemma3", Gemma3TextConfig(**common, head_dim=head_dim, sliding_window=window, query_pre_attn_scalar=head_dim,
                                     layer_types=["sliding_attention", "full_attention"] * (size["num_hidden_layers"] // 2))
    yield "phi3", Phi3Config(**common)
    yield "mixtral", MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2)
    yield "qwen2-moe-shared", Qwen2MoeConfig(**common, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=expert,
                                             shared_expert_intermediate_size=size["intermediate_size"] - expert // 3,
                                             mlp_only_layers=[size["num_hidden_layers"] - 1])
    yield "qwen3-moe", Qwen3MoeConfig(**common, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=expert,
                                      norm_topk_prob=True)


def save_random_model(config, path: Path, tokenizer_dir: Path | None = None):
    """A random model of `config` saved to `path` by transformers (norms and routers varied:
    their default init is zeros or ones in some families), with a tokenizer copied beside it.
    Returns the model, in float32."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("mlp.gate.weight"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if tokenizer_dir is not None and (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, path / name)
    return model.eval()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per row and round (default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON to this file")


def main(args: argparse.Namespace) -> int:
    import torch

    from gearterm.backends.gearbox import PolicyConfig
    from gearterm.backends.hf import HFBackend
    from gearterm.bench.cpu import _gearterm_rate
    from gearterm.models import POCKET_MODEL_DIR

    if args.tokens < 2 or args.rounds < 1 or args.threads < 1:
        raise UsageError("--tokens must be at least 2, --rounds and --threads at least 1")
    policy = PolicyConfig(anomaly_fraction=2.0)  # no entropy exceeds 2 log2(V): the guard never acts
    shape = ", ".join(f"{k} {v}" for k, v in BENCH_SIZE.items())
    print(f"random float32 weights ({shape}); the pocket model's tokenizer; {args.tokens} tokens per row,")
    print(f"{args.threads} threads, median of {args.rounds} rounds; torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"{'family':20} {'geared':>7} {'high tok/s':>11} {'low tok/s':>10} {'low/high':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, config in family_configs(BENCH_SIZE):
            path = Path(scratch) / name
            save_random_model(config, path, POCKET_MODEL_DIR)
            backend = HFBackend(str(path), device="cpu", dtype="float32", gate=False, policy=policy)
            backend.load()
            backend.eos_ids = set()  # the same number of tokens in every row
            torch.set_num_threads(args.threads)  # after load(), which picks one thread for small models
            rates = {mode: [] for mode in ("high", "low")}
            for _ in range(args.rounds):
                for mode in rates:
                    rates[mode].append(_gearterm_rate(backend, mode, args.tokens)[0])
            high, low = (statistics.median(rates[m]) for m in ("high", "low"))
            rows.append({"family": name, "geared_share": backend.geared_share, "high_tok_per_s": high,
                         "low_tok_per_s": low, "rounds": rates})
            print(f"{name:20} {backend.geared_share:7.0%} {high:11.1f} {low:10.1f} {low / high:8.2f}x", flush=True)
            backend.unload()
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))
    return 0
