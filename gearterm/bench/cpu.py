"""`gearterm bench cpu`: decode tokens/s of each gear mode on the CPU, beside plain
transformers `generate` and llama.cpp (xllamacpp) on the same weights, in one run.

Each round decodes the same number of tokens in every row (end of sequence ignored), rows
interleaved so that a busy machine slows them alike; the table shows each row's median.
Speed is decode only: tokens after the first over the time after the first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gearterm.errors import UsageError

MODES = ("high", "mid", "low", "auto", "lossless")
LOSSLESS_FIGURES = (("acceptance", "acceptance"), ("accepted per verify pass", "accepted_per_verify_pass"),
                    ("mean draft k", "mean_draft"))
PROMPT = "Write a story about a lighthouse keeper who finds a message in a bottle."

_LLAMA_SERVER = """
import sys
import xllamacpp as xlc

p = xlc.CommonParams()
p.model.path = sys.argv[1]
p.n_ctx = 1024
p.hostnames = ["127.0.0.1"]
p.port = 0
p.verbosity = -1
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = int(sys.argv[2])
server = xlc.Server(p)
print(server.listening_address, flush=True)
sys.stdin.read()
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model directory or a .gguf file")
    parser.add_argument("--tokens", type=int, default=128, help="tokens decoded per row and round (default 128)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every row (default 2)")
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON to this file")


def _gearterm_rate(backend, mode: str, tokens: int) -> tuple[float, dict | None]:
    """Decode tokens/s of one reply in `mode`, and in lossless mode its verify passes' figures."""
    from gearterm.backends.base import GenerationParams, ReplyDone, TokenEvent
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.lossless_reply import cycle_figures

    params = GenerationParams(max_tokens=tokens, gear_mode=GearMode(mode))
    events = list(backend.generate([{"role": "user", "content": PROMPT}], params))
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.tokens == tokens, done
    steps = [e for e in events if isinstance(e, TokenEvent) and e.is_token]
    forced = params.gear_mode.forced_gear
    # Lossless mode's drafts are the low gear's by design; a forced gear's row must be that gear only.
    if params.gear_mode is not GearMode.LOSSLESS and forced is not None and any(e.gear != forced for e in steps):
        raise RuntimeError(f"{mode} mode ran other gears than {forced.label}: the row would time something else")
    return (len(steps) - 1) / (done.seconds - done.first_token_s), cycle_figures(done.stats)


def _transformers_rate(model, prompt: list[int], tokens: int) -> float:
    import torch

    ids = torch.tensor([prompt])
    with torch.inference_mode():
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        total = time.perf_counter() - start
    return (tokens - 1) / (total - first)


def _llama_cpp_rate(url: str, prompt: list[int], tokens: int) -> float:
    import httpx

    body = {"prompt": prompt, "n_predict": tokens, "ignore_eos": True, "temperature": 0, "cache_prompt": False}
    timings = httpx.post(f"{url}/completion", json=body, timeout=600).json()["timings"]
    return timings["predicted_per_second"]


def _transformers_model(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    files = {}
    if path.suffix == ".gguf":
        path, name = path.parent, path.name
        files = {"gguf_file": name, "quantization_config": GgufConfig(gguf_file=name, dequantize=True)}
    with contextlib.redirect_stderr(io.StringIO()):  # its GGUF converter draws a progress bar
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True, use_kernels=False, **files).eval()


def main(args: argparse.Namespace) -> int:
    import torch

    from gearterm.backends.hf import HFBackend

    if args.tokens < 2 or args.rounds < 1 or args.threads < 1:
        raise UsageError("--tokens must be at least 2, --rounds and --threads at least 1")
    path = Path(args.model).expanduser()
    backend = HFBackend(str(path), device="cpu", gate=False)
    backend.load()
    backend.eos_ids = set()  # the same number of tokens in every row
    torch.set_num_threads(args.threads)  # after load(), which picks one thread for tiny models
    prompt = backend.encode_chat([{"role": "user", "content": PROMPT}])
    plain = _transformers_model(path)

    server = url = None
    if path.suffix == ".gguf":
        server = subprocess.Popen([sys.executable, "-c", _LLAMA_SERVER, str(path), str(args.threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = server.stdout.readline().strip() or None
    rates: dict[str, list[float]] = {}
    cycles: list[dict] = []  # lossless mode's verify passes, every round
    try:
        for _ in range(args.rounds):
            for mode in MODES:
                rate, figures = _gearterm_rate(backend, mode, args.tokens)
                rates.setdefault(f"gearterm {mode}", []).append(rate)
                cycles += [figures] if figures else []
            rates.setdefault("transformers generate", []).append(_transformers_rate(plain, prompt, args.tokens))
            if url:
                rates.setdefault("llama.cpp (same GGUF file)", []).append(_llama_cpp_rate(url, prompt, args.tokens))
    finally:
        if server:
            server.stdin.close()
            server.wait(timeout=30)
    rows = [{"row": name, "tok_per_s": statistics.median(r), "rounds": r} for name, r in rates.items()]
    high = statistics.median(rates["gearterm high"])
    print(f"model {path.name}  {args.tokens} tokens decoded per row, {args.threads} threads, median of {args.rounds} rounds")
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"{'row':34} {'tok/s':>8} {'x high':>7}   rounds")
    for row in rows:
        rounds = " ".join(f"{r:.1f}" for r in row["rounds"])
        print(f"{row['row']:34} {row['tok_per_s']:8.1f} {row['tok_per_s'] / high:6.2f}x   {rounds}")
    if cycles:
        print(f"lossless ({cycles[0]['draft_gear']} gear drafts, greedy), mean of the rounds: "
              + ", ".join(f"{name} {statistics.mean(c[key] for c in cycles):.2f}" for name, key in LOSSLESS_FIGURES))
        rows.append({"row": "lossless verify passes", **{key: statistics.mean(c[key] for c in cycles) for _, key in LOSSLESS_FIGURES}})
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))
    return 0
