"""MLX backend: per-token gears on Apple Silicon, and on Linux CPU through mlx[cpu]."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import mlx.core as mx
import numpy as np
import torch
from mlx.utils import tree_flatten

from gearterm.backends.apple_power import ApplePower
from gearterm.backends.base import (
    BackendError,
    Capabilities,
    Event,
    GenerationParams,
    Notice,
    Progress,
    TeacherForced,
)
from gearterm.backends.context_size import choose, free_memory_bytes
from gearterm.backends.gearbox import Gearbox, GearMode, PolicyConfig
from gearterm.backends.geared_generation import GearedGeneration, StepReading
from gearterm.backends.model_files import resolve_model_dir
from gearterm.backends.mlx_geared_linear import GearingReport, gear_decoder_layers
from gearterm.backends.mlx_hidden_tap import MLXHiddenStateTap
from gearterm.kernels.gate import gate_passed
from gearterm.kernels.gear import Gear, GearSelector
from gearterm.kernels.mlx_entropy import entropy_varentropy

PREFILL_CHUNK = 512  # prompt tokens per forward pass: bounds the [tokens, vocab] logits held at once


def sample(logits: mx.array, params: GenerationParams, key: mx.array | None) -> mx.array:
    """The next token id as a lazy 0-d array; greedy when the temperature is 0."""
    if params.temperature == 0:
        return mx.argmax(logits, axis=-1)
    scaled = logits.astype(mx.float32) / params.temperature
    logp = scaled - mx.logsumexp(scaled)
    if params.top_p < 1:
        sorted_logp = mx.sort(logp)[::-1]
        sorted_p = mx.exp(sorted_logp)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        kept = (mx.cumsum(sorted_p) - sorted_p < params.top_p).sum()
        logp = mx.where(logp < mx.take(sorted_logp, kept - 1), -mx.inf, logp)
    return mx.random.categorical(logp, key=key)


def log_softmax_at(logits: mx.array, ids: mx.array) -> mx.array:
    """Natural-log probability of `ids` under the distribution of each row of `logits`."""
    x = logits.astype(mx.float32)
    return mx.take_along_axis(x, ids[..., None], axis=-1)[..., 0] - mx.logsumexp(x, axis=-1)


def mlx_model_config(path) -> dict:
    """The fields mlx-lm reads that transformers 5 writes elsewhere or leaves to the family's
    default: rope theta and scaling (under `rope_parameters` now; mlx-lm would fall back to
    10,000), and whether the LM head is the embedding (mlx-lm's Llama assumes it is)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    fields = {"tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False))}
    rope = getattr(config, "rope_parameters", None) or {}
    if "full_attention" in rope:  # Gemma 3: one set per layer type
        fields["rope_local_base_freq"] = rope.get("sliding_attention", {}).get("rope_theta")
        rope = rope["full_attention"]
    if "rope_theta" in rope:
        fields["rope_theta"] = rope["rope_theta"]
    if rope.get("rope_type", "default") != "default":
        fields["rope_scaling"] = {**{k: v for k, v in rope.items() if k != "rope_theta"}, "type": rope["rope_type"]}
    return {k: v for k, v in fields.items() if v is not None}


def _free_memory_bytes() -> int | None:
    """On Apple Silicon, what Metal recommends the GPU works in, less what MLX holds; else RAM."""
    info = mx.device_info()
    if "max_recommended_working_set_size" in info:
        return info["max_recommended_working_set_size"] - mx.get_active_memory()
    return free_memory_bytes(torch.device("cpu"))


class MLXBackend(GearedGeneration):
    name = "mlx"

    def __init__(
        self,
        model: str,
        *,
        trust_remote_code: bool = False,
        policy: PolicyConfig | None = None,
        gate: bool = True,
        context: int = 0,
    ):
        """`context`: positions of context the conversation may fill; 0: the model's context, or
        what fits in free memory where that is less (backends.context_size). mlx-lm's cache
        grows as it fills.
        `gate`: run the activation entropy gate on every layer's hidden state each token."""
        super().__init__()
        self.model_id, self.context = model, context
        self.trust_remote_code = trust_remote_code
        self.policy = policy or PolicyConfig()
        self.gate = gate
        self.selector = GearSelector()
        self.power = ApplePower()
        self.model = self.tokenizer = self.tap = None
        self.gearing: GearingReport | None = None

    @property
    def capabilities(self) -> Capabilities:
        self._require_loaded()
        return Capabilities(
            entropy="exact",
            gears="per_token",
            hidden_states=self.tap is not None,
            vocab_size=self.vocab_size,
            device=mx.default_device().type.name,
            geared_share=self.gearing.share,
        )

    def load(self, progress: Progress | None = None) -> None:
        report = progress or (lambda fraction, text: None)
        report(0.0, "checking the model files")  # the loading line names the model
        path = resolve_model_dir(self.model_id)
        if not any(path.glob("*.safetensors")):
            raise BackendError(f"{path} holds no *.safetensors weights, the only kind mlx-lm loads")
        import mlx_lm
        from mlx_lm.models.cache import make_prompt_cache

        report(0.1, f"loading weights with mlx-lm ({mx.default_device().type.name})")
        try:
            model, tokenizer, config = mlx_lm.load(
                str(path),
                return_config=True,
                tokenizer_config={"trust_remote_code": self.trust_remote_code},
                model_config=mlx_model_config(path),
            )
        except Exception as e:  # mlx-lm raises bare ValueErrors, KeyErrors... for what it cannot read
            raise BackendError(f"mlx-lm could not load {path}: {type(e).__name__}: {e}") from None
        report(0.6, "building the low and mid gears")
        self.selector.gear = Gear.HIGH
        self.gearing = gear_decoder_layers(model.layers, self.selector)
        self.tap = MLXHiddenStateTap(model.layers) if self.gate else None
        self.model, self.tokenizer, self.config, self.path = model, tokenizer, config, path
        self._cache = None  # mlx-lm's KV cache, kept from reply to reply (backends.kv_reuse)
        self.cached.keep(0)
        probe = make_prompt_cache(model)
        # The width of the logits, not the tokenizer's length: some models pad the vocabulary.
        self.vocab_size = model(mx.array([[0]]), cache=probe)[0, -1].shape[-1]
        self.eos_ids = set(tokenizer.eos_token_ids)
        self.max_positions = config.get("max_position_embeddings")
        ready = "ready"
        if self.max_positions:
            # Each layer's cache has room for a block of positions after one token.
            per_position = sum(c.nbytes // c.keys.shape[2] for c in probe)
            context = choose(self.max_positions, per_position, _free_memory_bytes(), self.context)
            self.max_positions, ready = context.positions, f"ready: {context.describe()}"
        self._gearing_told = False
        report(1.0, ready)

    def unload(self) -> None:
        self.model = self.tokenizer = self.gearing = self.tap = self._cache = None
        self.cached.keep(0)
        mx.clear_cache()

    def memory_bytes(self) -> int | None:
        """Bytes of every array the model holds: all three gears of every geared projection."""
        if self.model is None:
            return None
        return sum(a.nbytes for _, a in tree_flatten(self.model.parameters()))

    def memory_stats(self) -> dict[str, int]:
        """MLX allocator figures: what is in use now, and the most since the reply began."""
        return {"active_memory_bytes": mx.get_active_memory(), "peak_memory_bytes": mx.get_peak_memory()}

    def power_reading(self) -> tuple[float | None, str]:
        """(GPU watts, their source), or (None, why there is no reading): show "n/a — why"."""
        return self.power.reading()

    def _rewind(self, positions: int) -> int:
        """mlx-lm trims its caches back, except a sliding window's once it has wrapped around
        (it no longer holds the positions before the window): then a fresh cache."""
        from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

        if positions and self._cache is not None and can_trim_prompt_cache(self._cache):
            trim_prompt_cache(self._cache, self._cache[0].offset - positions)
            return positions
        self._cache = make_prompt_cache(self.model)
        return 0

    def _prefill(self, ids: list[int], start: int, params: GenerationParams) -> list[float]:
        """Run the prompt after the cache's first `start` positions, in chunks that bound the
        [tokens, vocab] logits held at once."""
        self._key = None
        if params.temperature > 0:
            self._key = mx.random.key(params.seed if params.seed is not None else random.getrandbits(63))
        mx.reset_peak_memory()  # each call of a long prompt's read: the last holds the most cache, so the read's peak
        entropies: list[float] = []
        for i in range(start, len(ids), PREFILL_CHUNK):
            logits = self.model(mx.array([ids[i : i + PREFILL_CHUNK]]), cache=self._cache)[0]
            h, _ = entropy_varentropy(logits)
            mx.eval(h)
            entropies += h.tolist()
        self._logits = logits[-1]
        return entropies

    def _sample(self, params: GenerationParams) -> StepReading:
        step_key = None
        if self._key is not None:
            self._key, step_key = mx.random.split(self._key)
        logits = self._logits
        self._token = token = sample(logits, params, step_key)
        h, varentropy = entropy_varentropy(logits)
        logprob = log_softmax_at(logits, token)
        # Each layer's output in the pass that produced these logits: what the gate reads.
        hidden = self.tap.take() if self.tap is not None else None
        # The one evaluation of the step: forward pass, entropy, sample and hidden rows together.
        mx.eval(token, h, varentropy, logprob, hidden)
        survival = None
        if hidden is not None:
            # The gate's CPU path works on numpy: the evaluated rows cross without a copy.
            survival = tuple(gate_passed(torch.from_numpy(np.array(hidden, copy=False))).tolist())
        return StepReading(token.item(), h.item(), varentropy.item(), logprob.item(), survival)

    def _step(self) -> None:
        self._logits = self.model(self._token.reshape(1, 1), cache=self._cache)[0, -1]

    def _run(self, ids: list[int], pos: int) -> torch.Tensor:
        """Lossless mode's draft steps and verify passes: mlx-lm's cache goes back to `pos` (it
        trims what a rejected draft left), runs `ids`, and the logits cross to torch for the
        acceptance rule (backends.lossless), which is written once, in torch."""
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

        extra = self._cache[0].offset - pos
        if extra > 0:
            if not can_trim_prompt_cache(self._cache):
                raise BackendError("lossless mode needs a KV cache that can go back; this model's "
                                   "sliding-window cache has wrapped around: use the high gear")  # fmt: skip
            trim_prompt_cache(self._cache, extra)
        logits = self.model(mx.array([ids]), cache=self._cache)[0].astype(mx.float32)
        mx.eval(logits)
        return torch.from_numpy(np.array(logits, copy=False))

    def _reply_stats(self) -> dict:
        return self.memory_stats()

    def _generate(self, ids: list[int], params: GenerationParams) -> Iterator[Event]:
        if not self._gearing_told and (self.gearing.padded or self.gearing.kept):
            self._gearing_told = True
            yield Notice(self.gearing.describe())
        if self.tap is None:
            yield from super()._generate(ids, params)
            return
        # Only generation feeds the gate: teacher forcing records nothing.
        self.tap.recording = True
        try:
            yield from super()._generate(ids, params)
        finally:
            self.tap.recording = False

    def teacher_force(self, ids: Sequence[int], mode: GearMode) -> TeacherForced:
        """Score `ids` (starting with BOS) token by token under `mode`.

        Forced modes run one forward pass over the whole sequence. Auto runs step by step
        with the KV cache, each step's gear chosen from the previous step's entropy,
        exactly as in generation, but fed the real next token instead of a sampled one."""
        from mlx_lm.models.cache import make_prompt_cache

        self._require_loaded()
        ids = list(ids)
        gearbox = Gearbox(self.vocab_size, mode, self.policy)
        targets = mx.array(ids[1:])
        if mode.forced_gear is not None:
            self.selector.gear = mode.forced_gear
            logits = self.model(mx.array([ids]))[0, :-1]
            logprobs, top1 = log_softmax_at(logits, targets), mx.argmax(logits, axis=-1)
            mx.eval(logprobs, top1)
            return TeacherForced(logprobs.tolist(), top1.tolist(), [mode.forced_gear] * len(ids[1:]), 0)
        logprobs, top1, gears = [], [], []
        cache = make_prompt_cache(self.model)
        self.selector.gear = gearbox.gear
        logits = self.model(mx.array([ids[:1]]), cache=cache)[0, -1]
        for target in ids[1:]:
            gears.append(self.selector.gear)
            h, _ = entropy_varentropy(logits)
            logprob, best = log_softmax_at(logits, mx.array(target)), mx.argmax(logits)
            mx.eval(h, logprob, best)
            logprobs.append(logprob.item())
            top1.append(best.item())
            self.selector.gear = gearbox.step(h.item()).gear
            logits = self.model(mx.array([[target]]), cache=cache)[0, -1]
        return TeacherForced(logprobs, top1, gears, gearbox.shifts)
