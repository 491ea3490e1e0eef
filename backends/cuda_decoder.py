"""Decode steps on a CUDA GPU as captured graphs, one set per gear: a shift picks which
graphs replay next. Nothing is copied or requantized at a shift, and a step costs a few
graph launches instead of a thousand kernel launches from Python.

A step is captured as several graphs of consecutive decoder layers, not one: the host spends
about 20-27 us a layer launching a graph (640 us for a 32-layer Llama-3-8B step, measured on an
H100 with torch.profiler), and the GPU starts a graph only once its launch returns. So the
first chunk is one layer, and each next one at most twice the one before: the GPU waits for
one layer's launch, and every later launch is done before the GPU needs it (a layer takes the
GPU 85-190 us at that size).

Same interface as hf.EagerDecoder, over gearterm's own decoder (backends.decoder). Its KV
cache and the step's position (a device tensor the captured step advances in place) keep
their addresses, so the graphs captured over them stay valid from reply to reply.
"""

from __future__ import annotations

import contextlib
import gc
import time

import torch

from gearterm.backends.base import BackendError
from gearterm.backends.decoder import Decoder
from gearterm.backends.limits import LIMITS
from gearterm.backends.prompt_pass import PromptPasses
from gearterm.kernels import dependent_launch
from gearterm.kernels.decode_attention import MAX_QUERIES
from gearterm.kernels.entropy import logit_readings
from gearterm.kernels.gear import Gear, GearSelector


_WARMUP_TOKENS = 1 + 2 * len(Gear)  # what _capture writes into the cache before it resets it
LONGEST_CHUNK = 8  # layers: past this, more chunks cost launches and gain nothing


class GraphDecoder(PromptPasses):
    def __init__(self, model: Decoder, selector: GearSelector, positions: int, compile: bool = False):
        """`positions`: what the KV cache holds (backends.context_size). A step's attention
        reads the positions filled only (kernels.decode_attention), except with Gemma 2's
        score soft-capping, which attends over the whole cache, masked: there the cache's size
        costs bandwidth at every token (8,192 positions of a Llama-3-8B shape in float16 would
        be 1.07 GB a step).
        `compile`: run each decoder layer and the readings through torch.compile before the
        step is captured, so that inductor fuses the small kernels around the projections
        (rotary embedding, cache writes, residual adds with the norm after them, SiLU) and the
        readings' reductions. A layer compiles once per gear (the gear is a Python attribute
        the geared layers read, so dynamo specializes on it) and per layer (its cache is its
        own), which adds minutes to the capture. Layers, not the whole step, so that the chunk
        boundaries between them (hooks that must run at capture time) are not graph breaks
        inside a compiled loop, where dynamo would fall back to eager."""
        self.model, self.selector = model, selector
        layers = model.layers
        self._readings = logit_readings
        if compile:
            dependent_launch.let_inductor_launch_dependents(model.embed.weight.device)
            # Per layer and gear a decode version, a verify version, and one for a one-token
            # prompt's mask.
            _allow_recompiles(2 * len(Gear) * (len(layers) + 1) + 16)
            for layer in layers:
                # The instance's forward, not the module: its hooks stay outside, run eagerly.
                layer.forward = _compiled_for_captured_passes(layer.forward)
            self._readings = torch.compile(logit_readings, dynamic=False)
        self.max_cache_len = max(positions, _WARMUP_TOKENS)
        model.allocate(self.max_cache_len)
        device = model.embed.weight.device
        self.token = torch.zeros(1, dtype=torch.long, device=device)  # the step's input
        self.position = torch.zeros(1, dtype=torch.long, device=device)  # where the step writes
        # A GEMV of the model's width that feed() runs eagerly before each step's graphs.
        width, dtype = model.shape.hidden_size, model.embed.weight.dtype
        self._cublas_primer = [torch.zeros(n, width, dtype=dtype, device=device) for n in (1, 16)]
        self.length = 0  # tokens in the cache, mirrored on the host to refuse an overflow
        self.launched_at = 0.0  # perf_counter() just before the last replay: shift latency
        self.graphs: dict[Gear, list[torch.cuda.CUDAGraph]] = {}  # a step's chunks, in order
        self.outputs: dict[Gear, tuple[torch.Tensor, torch.Tensor]] = {}  # logits, readings
        # Lossless mode's verify passes in the high gear, by positions run: graph, logits [T, V]
        self.verify_graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.verify_outputs: dict[int, torch.Tensor] = {}
        self._verify_tokens = torch.zeros(int(LIMITS["lossless_max_draft"].high) + 1, dtype=torch.long, device=device)
        self._chunks: list[torch.cuda.CUDAGraph] | None = None  # the chunks being captured
        self._hooks = [layers[i].register_forward_pre_hook(self._next_chunk) for i in chunk_starts(len(layers))]
        self._capture()

    def _model_step(self, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Position and cache slot come from a device tensor the step advances itself.
        logits = self.model(token, self.position)[-1]
        self.position.add_(1)
        return logits, self._readings(logits)

    def _next_chunk(self, module, args) -> None:
        """Before a chunk's first layer, while capturing: end the graph so far, start the next."""
        if self._chunks is not None:
            self._chunks[-1].capture_end()
            self._chunks.append(torch.cuda.CUDAGraph())
            self._chunks[-1].capture_begin(pool=self._pool)

    @torch.inference_mode()
    def _forward_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The decode step as captured."""
        return self._model_step(self.token)

    @torch.inference_mode()
    def _capture(self) -> None:
        gear_before = self.selector.gear
        self.prefill([0])  # allocates the cache's tensors, outside any graph's memory pool
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up off the capture stream: Triton compiles, cuBLAS plans
            for gear in Gear:
                self.selector.gear = gear
                for _ in range(2):
                    self._forward_step()
        torch.cuda.current_stream().wait_stream(side)
        # One pool for all graphs: one gear's chunks run at a time, in the order captured, so
        # they can share scratch; what a chunk hands to the next stays allocated meanwhile.
        self._pool = torch.cuda.graph_pool_handle()
        torch.cuda.synchronize()
        capture = torch.cuda.Stream()
        with torch.cuda.stream(capture), _no_collection():
            for gear in Gear:
                self.selector.gear = gear  # the geared layers read it while the graphs are recorded
                self._chunks = [torch.cuda.CUDAGraph()]
                self._chunks[0].capture_begin(pool=self._pool)
                self.outputs[gear] = self._forward_step()
                self._chunks[-1].capture_end()
                self.graphs[gear], self._chunks = self._chunks, None
        torch.cuda.current_stream().wait_stream(capture)
        self.selector.gear = gear_before
        self.position.zero_()
        self.length = 0

    @torch.inference_mode()
    def _prompt(self, ids: list[int], start: int, run):
        out = super()._prompt(ids, start, run)
        self.position.fill_(len(ids))  # the captured steps read the position here
        return out

    @torch.inference_mode()
    def feed(self, token: torch.Tensor) -> torch.Tensor:
        """Copy `token` (a 0-d id tensor on the device) into the graphs' input, ahead of step().

        Then one eager 16-row GEMV of the model's width. Measured on an H100 (torch 2.11, CUDA
        13), not explained: after an eager kernel that is not a cuBLAS GEMV (the sampling's
        reductions, say), the high gear's graphs run 0.44 ms slower per Llama-3-8B step (8.03
        against 7.57 ms): each gap between kernels grows from 0.1 to 0.4 us and each graph
        launch takes the host 3x as long. A GEMV launched eagerly after them restores the fast
        replays (a captured one does not; copies and host reads do not undo it). It costs about
        2 us of GPU time. Plain graphs of the low gear ran as fast either way (4.87 ms); with
        compiled layers the mid and low steps were faster after it too (docs/benchmarks)."""
        self.token.copy_(token.reshape(1))
        x, w = self._cublas_primer
        torch.nn.functional.linear(x, w)
        return self.token

    def step(self, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [V] for the position after `token` (a 0-d id tensor on the device) and their
        readings (gearterm.kernels.entropy.logit_readings), from the graphs of the selector's gear.
        Not in inference mode: a replay records nothing for autograd anyway, and entering the
        mode took the H100's host 16-24 us right after its wait for the GPU (4.5 us in a warm
        loop), five times the rest of the launch path (docs/benchmarks/decode-h100.md)."""
        self._reserve(1)
        if token is not self.token:  # not fed yet
            self.feed(token)
        self.launched_at = time.perf_counter()
        self.replay(self.selector.gear)
        logits, readings = self.outputs[self.selector.gear]
        return logits.clone(), readings.clone()  # the graphs overwrite them at their next replay

    def run(self, ids: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits [T, V] for ids [T] at positions pos.. (lossless mode, backends.lossless); the
        cache then holds pos + T positions. One position (a draft step) replays the selector's
        gear's captured step. Several (a verify pass, in the high gear) replay a graph captured
        for that many positions the first time a pass of that length runs; that first pass runs
        eagerly on the graph's own tensors, which is the capture's warm-up. Its attention, like a
        step's, reads the positions filled only (kernels.decode_attention takes a few queries)."""
        self.length = positions_held(pos + len(ids), self.max_cache_len, "the GPU's KV cache")
        self.position.fill_(pos)
        if len(ids) == 1:
            self.feed(ids[0])
            self.replay(self.selector.gear)
            return self.outputs[self.selector.gear][0].clone()[None]
        tokens = self._verify_tokens[: len(ids)]
        tokens.copy_(ids)
        graph = self.verify_graphs.get(len(ids)) if self.selector.gear is Gear.HIGH else None
        if graph is not None:
            graph.replay()
            logits = self.verify_outputs[len(ids)].clone()  # the next replay overwrites it
        else:
            with torch.inference_mode():
                logits = self.model(tokens, self.position)
            if self.selector.gear is Gear.HIGH:
                self._capture_verify(tokens)
        self.position.fill_(pos + len(ids))
        return logits

    @torch.inference_mode()
    def _capture_verify(self, tokens: torch.Tensor) -> None:
        """Record the high gear's forward pass over `tokens` (a slice of the static input) at
        the step's position tensor, as one graph in the steps' memory pool."""
        graph, capture = torch.cuda.CUDAGraph(), torch.cuda.Stream()
        capture.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(capture), _no_collection():
            graph.capture_begin(pool=self._pool)
            self.verify_outputs[len(tokens)] = self.model(tokens, self.position)
            graph.capture_end()
        torch.cuda.current_stream().wait_stream(capture)
        self.verify_graphs[len(tokens)] = graph

    def replay(self, gear: Gear) -> None:
        """One decode step at `gear`, without touching the host's count of cached tokens."""
        for chunk in self.graphs[gear]:
            chunk.replay()

    def _reserve(self, tokens: int, reset: bool = False) -> None:
        length = tokens if reset else self.length + tokens
        self.length = positions_held(length, self.max_cache_len, "the GPU's KV cache")


def positions_held(length: int, capacity: int, cache: str) -> int:
    """`length`, where a KV cache of `capacity` positions holds it; a BackendError otherwise."""
    if length > capacity:
        raise BackendError(
            f"the conversation needs {length} positions but {cache} holds {capacity}; "
            "start a new conversation or ask for fewer tokens"
        )
    return length


def chunk_starts(layers: int) -> list[int]:
    """The layers that begin a new graph: chunks of 1, 2, 4, ... layers, then LONGEST_CHUNK."""
    starts, size, start = [], 1, 1
    while start < layers:
        starts.append(start)
        size = min(2 * size, LONGEST_CHUNK)
        start += size
    return starts


@contextlib.contextmanager
def _no_collection():
    """No garbage collection while graphs are captured. A collection there can free another
    decoder's graphs (an earlier backend left in a reference cycle), and destroying a graph is
    not allowed during a capture: the capture then fails ("operation failed due to a previous
    error during capture"), as it did on an H200 when `bench lossless --project-onto` built its
    second model. Collected first, so what was waiting goes now, outside any capture."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _allow_recompiles(entries: int) -> None:
    """Dynamo keeps 8 compiled versions of a function by default and runs it eagerly past
    that; every decoder layer in every gear is a version of the same forward."""
    import torch._dynamo.config as dynamo_config

    names = ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit")
    for name in names:  # the names changed across torch versions
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), entries))


def _compiled_for_captured_passes(forward):
    """A decoder layer's forward compiled for what the graphs replay: the decode step (one
    position at a device tensor, one static version per gear) and lossless mode's verify
    passes (2 to MAX_QUERIES positions at a device tensor, the high gear: one version whose
    length is symbolic, compiled at the first verify pass, so no new length compiles again).
    Prompts run it as it is: their lengths are many, and their time is in the matmuls.
    Uncompiled, a verify pass of the Llama-3-8B shape cost 6.6-7.2 ms on an H200 against
    4.75 ms for a compiled step (docs/benchmarks/lossless-gpu.md)."""
    one_position = torch.compile(forward, dynamic=False)
    verify = torch.compile(forward)  # its length marked dynamic below; the rest static

    def dispatch(x, cos, sin, visible, cache, pos):
        if not isinstance(pos, torch.Tensor) or x.shape[0] > MAX_QUERIES:
            return forward(x, cos, sin, visible, cache, pos)
        if x.shape[0] == 1:
            return one_position(x, cos, sin, visible, cache, pos)
        for per_position in (x, cos, sin, pos):
            torch._dynamo.maybe_mark_dynamic(per_position, 0)
        return verify(x, cos, sin, visible, cache, pos)

    return dispatch
