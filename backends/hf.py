"""Hugging Face Transformers backend: per-token gears on a local causal LM (CPU, or CUDA)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path

import torch

from gearterm.backends.base import (
    BackendError,
    Capabilities,
    GenerationParams,
    Notice,
    Progress,
    TeacherForced,
)
from gearterm.backends.compile_cache import use_compile_cache
from gearterm.backends.context_size import choose, free_memory_bytes
from gearterm.backends.cuda_decoder import GraphDecoder, positions_held
from gearterm.backends.decoder import Decoder, KVCache
from gearterm.backends.decoder_weights import build_decoder, load_decoder, shape_of
from gearterm.backends.gearbox import Gearbox, GearMode, PolicyConfig
from gearterm.backends.geared_generation import GearedGeneration, StepReading
from gearterm.backends.geared_linear import gear_decoder_layers, geared_share
from gearterm.backends.gguf_kept import gguf_config, gguf_tokenizer
from gearterm.backends.hidden_tap import HiddenStateTap
from gearterm.backends.model_files import check_model_dir, resolve_model_dir
from gearterm.backends.prompt_pass import PromptPasses
from gearterm.backends.sampling import sample
from gearterm.kernels import cpu_gears
from gearterm.kernels.entropy import entropy_varentropy, logit_readings
from gearterm.kernels.gate import gate_passed
from gearterm.kernels.gear import GearSelector

SMALL_MODEL_PARAMS = 50_000_000


def _generation_config(path):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path, local_files_only=True)
    except OSError:  # the directory has none: the tokenizer's end of sequence alone
        return None


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError("--device cuda was asked for, but torch sees no CUDA GPU")
    return torch.device(device)


def pick_dtype(dtype: str | None, device: torch.device, stored: torch.dtype | None) -> torch.dtype:
    if dtype not in (None, "auto"):
        try:
            return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        except KeyError:
            raise BackendError(f"unknown dtype {dtype!r}: use float32, float16 or bfloat16") from None
    if device.type == "cpu":
        return torch.float32  # CPU matmuls in 16-bit are slow; upcasting keeps 16-bit values exact
    return stored if stored in (torch.float16, torch.bfloat16) else torch.float16


class EagerDecoder(PromptPasses):
    """Forward passes of gearterm's own decoder (backends.decoder) one call at a time,
    positions counted on the host: the CPU path, and a mixture of experts' on a GPU.
    cuda_decoder.GraphDecoder is the GPU's otherwise."""

    def __init__(self, model: Decoder, positions: int):
        model.allocate(positions)
        self.model, self.length = model, 0

    def feed(self, token: torch.Tensor) -> torch.Tensor:
        return token

    @torch.inference_mode()
    def step(self, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = self.length
        self._reserve(1)
        logits = self.model(token.reshape(1), pos)[-1]
        return logits, logit_readings(logits)

    @torch.inference_mode()
    def run(self, ids: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits [T, V] for ids [T] at positions pos.. (lossless mode's draft steps and verify
        passes); the cache then holds pos + T positions, whatever it held past pos forgotten."""
        self.length = positions_held(pos + len(ids), self.model.positions, "the KV cache")
        return self.model(ids, pos)

    def _reserve(self, tokens: int, reset: bool = False) -> None:
        length = tokens if reset else self.length + tokens
        self.length = positions_held(length, self.model.positions, "the KV cache")


class HFBackend(GearedGeneration):
    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        policy: PolicyConfig | None = None,
        gate: bool = True,
        compile: bool = True,
        context: int = 0,
    ):
        """`context`: positions the KV cache holds; 0: the model's context, or what fits in
        free memory where that is less (backends.context_size).
        `gate`: run the activation entropy gate on every layer's hidden state each token.
        `compile`: on a GPU, torch.compile each decoder layer before the decode step's graphs
        are captured (Llama-3-8B shape on an H200: 1.31x the plain graphs' tokens/s in the
        high gear, 1.48x in the low; 20 s to gear, compile and capture instead of 5)."""
        super().__init__()
        self.model_id = model
        self.requested_device, self.requested_dtype = device, dtype
        self.trust_remote_code, self.allow_pickle = trust_remote_code, allow_pickle
        self.policy = policy or PolicyConfig()
        self.selector = GearSelector()
        self.gate, self.compile, self.context = gate, compile, context
        self.model = self.tokenizer = self.decoder = self.tap = None

    @property
    def capabilities(self) -> Capabilities:
        self._require_loaded()
        return Capabilities(
            entropy="exact",
            gears="per_token",
            hidden_states=True,
            vocab_size=self.vocab_size,
            device=str(self.device),
            geared_share=self.geared_share,
        )

    def load(self, progress: Progress | None = None) -> None:
        report = progress or (lambda fraction, text: None)
        report(0.0, "checking the model files")  # the loading line names the model
        path, gguf = self._locate()
        from transformers import AutoConfig, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress callback reports the load

        self.device = pick_device(self.requested_device)
        remote = self.trust_remote_code
        try:
            config = gguf_config(path, gguf) if gguf else AutoConfig.from_pretrained(path, trust_remote_code=remote)
            stored = getattr(config, "dtype", None)
            if isinstance(stored, str):
                stored = getattr(torch, stored, None)
            dtype = pick_dtype(self.requested_dtype, self.device, stored)
            shape_of(config)  # refuses, naming the families gearterm gears, before any weight is read
            report(0.05, "loading tokenizer")
            tokenizer = gguf_tokenizer(path, gguf) if gguf else AutoTokenizer.from_pretrained(path, trust_remote_code=remote)
            loading = f"loading weights ({dtype}, {self.device})"
            report(0.1, loading + (": reading the GGUF file" if gguf else ""))
            # A GGUF's tensors are dequantized one by one: the bar moves with them, to where gearing starts
            dequantized = lambda n, total: report(0.1 + 0.35 * n / total, f"{loading}: tensor {n} of {total}")  # noqa: E731
            model = load_decoder(path, config, dtype, self.device, gguf, dequantized)
        except BackendError:
            raise
        except Exception as e:
            where = Path(path) / gguf if gguf else path
            if gguf and (isinstance(e, (struct.error, EOFError)) or "cannot reshape array" in str(e)):
                # What gguf's reader raises where a file ends early: in its header (unpacking)
                # or in its tensors (a memory map shorter than a tensor)
                raise BackendError(f"could not read {where} as GGUF (is it truncated or damaged?): {e}") from None
            raise BackendError(f"could not load {where}: {type(e).__name__}: {e}") from None
        self.path = path
        self.generation_config = _generation_config(path)
        self._attach_decoder(model, config, tokenizer, progress)

    def _locate(self) -> tuple[Path, str | None]:
        """The model's directory, and the name of its GGUF file where --model names one."""
        named = Path(self.model_id).expanduser()
        if named.suffix == ".gguf":
            if not named.is_file():
                raise BackendError(f"no such GGUF file: {self.model_id}")
            return named.parent, named.name
        path = resolve_model_dir(self.model_id)
        check_model_dir(path, allow_pickle=self.allow_pickle, trust_remote_code=self.trust_remote_code)
        return path, None

    def _attach_decoder(self, model: Decoder, config, tokenizer, progress: Progress | None) -> None:
        """Gear gearterm's own decoder and get it ready to generate on its device."""
        report = progress or (lambda fraction, text: None)
        self.device, self.tokenizer, self.model, self.config = model.embed.weight.device, tokenizer, model, config
        self.cached.keep(0)  # a new cache holds nothing of earlier replies
        small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
        if self.device.type == "cpu" and small:
            # A small model's matmuls are too short to split across threads: the threads'
            # hand-offs cost more than they save (5x slower on a busy 2-core machine).
            torch.set_num_threads(1)
        if self.device.type == "cpu" and not cpu_gears.built():
            compiling = "compiling the CPU gear kernel: about a minute, then cached"  # one row at 80 columns
            report(0.45, "loading the CPU gear kernel" if cpu_gears.compiled_before() else compiling)
            cpu_gears.available()
        self.geared_layers = gear_decoder_layers(model.layers, self.selector, lambda f, t: report(0.5 + 0.5 * f, t))
        self.geared_share = geared_share(model.layers)
        self.num_layers = len(model.layers)
        self.vocab_size = model.shape.vocab_size
        self.eos_ids = self._eos_ids()
        dtype = model.embed.weight.dtype
        # Before any decoder exists: a CUDA graph captured later records the tap's copies too.
        self.tap = HiddenStateTap(model.layers, model.shape.hidden_size, dtype, self.device) if self.gate else None
        s = model.shape
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # what gearing freed counts as free
        context = choose(
            s.max_positions, 2 * s.num_layers * s.num_kv_heads * s.head_dim * dtype.itemsize,
            free_memory_bytes(self.device), self.context,
        )  # fmt: skip
        if self.device.type == "cuda" and not s.num_experts:
            work = "compiling the layers and capturing" if self.compile else "capturing"
            cache = f" (compile cache: {use_compile_cache()})" if self.compile else ""
            report(0.99, f"{work} the decode step's CUDA graphs, per gear{cache}; {context.describe()}")
            self.decoder = GraphDecoder(model, self.selector, context.positions, compile=self.compile)
            self.max_positions = self.decoder.max_cache_len
        else:
            if self.device.type == "cuda":
                self.load_notices.append(Notice(
                    "mixture of experts: the experts each token takes are read on the host, which a CUDA "
                    "graph cannot capture, so decode steps run eagerly (slower than a dense model)", "warning",
                ))
            self.max_positions = context.positions
            self.decoder = EagerDecoder(model, self.max_positions)
        report(1.0, f"ready: {context.describe()}")

    def attach(self, model, tokenizer, progress: Progress | None = None) -> None:
        """Run a transformers model already built on its device (benchmarks build them from a
        config): its weights move into gearterm's decoder, geared, ready to generate."""
        self.generation_config = getattr(model, "generation_config", None)
        decoder = build_decoder(model.config, model.state_dict(), model.dtype, model.device)
        self._attach_decoder(decoder, model.config, tokenizer, progress)

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        eos = getattr(self.generation_config, "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos])
        return {i for i in ids if i is not None}

    def unload(self) -> None:
        self.model = self.tokenizer = self.decoder = self.tap = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def memory_bytes(self) -> int | None:
        """The weights in every gear; not the KV cache."""
        if self.model is None:
            return None
        caches = {id(t) for m in self.model.modules() if isinstance(m, KVCache) for t in m.buffers()}
        tensors = {id(t): t for t in [*self.model.parameters(), *self.model.buffers()] if id(t) not in caches}
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def _prefill(self, ids: list[int], start: int, params: GenerationParams) -> list[float]:
        self._generator = None
        if params.seed is not None:
            self._generator = torch.Generator(self.device).manual_seed(params.seed)
        # The last logits and each position's entropy, never [T, V] logits at once.
        self._logits, entropies = self.decoder.read_prompt(ids, start)
        self._readings = logit_readings(self._logits)
        return entropies.tolist()

    def _sample(self, params: GenerationParams) -> StepReading:
        logits, (argmax, h, varentropy, lse) = self._logits, self._readings
        greedy = params.temperature == 0
        token = argmax.long() if greedy else sample(logits, params, self._generator)
        # gather, not logits[token]: indexing with a 0-d tensor reads it on the host (a sync).
        logprob = logits.gather(0, token.reshape(1))[0].float() - lse
        scalars = torch.stack([token.float(), h, varentropy, logprob])
        if self.tap is not None:
            # Per layer: did the hidden state of the pass that produced this token pass the gate.
            scalars = torch.cat([scalars, gate_passed(self.tap.last_hidden).float()])
        # The next step's input is queued before the sync, so that launching the step is all
        # that is left once the policy has chosen its gear.
        self._token = self.decoder.feed(token)
        # The one host sync of the step: every scalar crosses together.
        token_id, h, varentropy, logprob, *passed = scalars.tolist()
        survival = tuple(p > 0.5 for p in passed) if self.tap is not None else None
        return StepReading(int(token_id), h, varentropy, logprob, survival)

    def _step(self) -> None:
        self._logits, self._readings = self.decoder.step(self._token)

    def _run(self, ids: list[int], pos: int) -> torch.Tensor:
        return self.decoder.run(torch.tensor(ids, device=self.device), pos)

    def _steps_run_ahead(self) -> bool:
        return isinstance(self.decoder, GraphDecoder)  # a step is graph launches, queued

    @torch.inference_mode()
    def teacher_force(self, ids: Sequence[int], mode: GearMode) -> TeacherForced:
        """Score `ids` (starting with BOS) token by token under `mode`.

        Forced modes run one forward pass over the whole sequence. Auto runs step by step
        with the KV cache, each step's gear chosen from the previous step's entropy,
        exactly as in generation, but fed the real next token instead of a sampled one."""
        self._require_loaded()
        ids = list(ids)
        self.cached.keep(0)  # scoring writes over the cache
        gearbox = Gearbox(self.vocab_size, mode, self.policy)
        targets = torch.tensor(ids[1:], device=self.device)
        if mode.forced_gear is not None:
            self.selector.gear = mode.forced_gear
            logits = self.decoder.prefill(ids)[:-1]
            gears = [mode.forced_gear] * len(targets)
        else:
            rows, gears = [], []
            self.selector.gear = gearbox.gear
            logits = self.decoder.prefill(ids[:1])[-1]
            for target in targets:
                rows.append(logits)
                gears.append(self.selector.gear)
                h, _ = entropy_varentropy(logits)
                self.selector.gear = gearbox.step(h.item()).gear
                logits, _ = self.decoder.step(target)
            logits = torch.stack(rows[: len(targets)])
        logprobs = torch.log_softmax(logits.float(), -1).gather(-1, targets[:, None])[:, 0]
        return TeacherForced(logprobs.tolist(), logits.argmax(-1).tolist(), gears, gearbox.shifts)


def perplexity(logprobs: Sequence[float]) -> float:
    return math.exp(-sum(logprobs) / len(logprobs))
