"""Fixtures shared across the suite: the real models in ../shared, and a tiny random Llama."""

from pathlib import Path

import pytest

from gearterm import quiet_exit

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
STORIES_HF = SHARED / "models" / "stories260K-hf"
STORIES_GGUF = SHARED / "models" / "stories260K-gguf" / "stories260K-f32.gguf"
SMOLLM2 = SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TINYSTORIES_TEXT = SHARED / "data" / "tinystories-valid-head" / "tinystories_val.txt"


def pytest_configure(config):
    quiet_exit.install()  # no report of Triton's leaked bindings after the summary


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch, tmp_path_factory):
    """`gearterm run` and the app read the user's config.toml: tests read none unless they say so."""
    monkeypatch.setenv("GEARTERM_CONFIG", str(tmp_path_factory.getbasetemp() / "no-config.toml"))


@pytest.fixture(autouse=True)
def gguf_kept_in_the_session(monkeypatch, tmp_path_factory):
    """GGUF configs and tokenizers converted by one test are kept for the session's later loads,
    as a user's are between runs, in the session's folder rather than the user's cache dir."""
    from gearterm.backends import gguf_kept

    monkeypatch.setattr(gguf_kept, "kept_root", lambda: tmp_path_factory.getbasetemp() / "gguf-kept")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests need ../shared beside the checkout")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def stories_hf() -> Path:
    """stories260K as a Hugging Face directory: real pretrained weights, vocab 512."""
    return _need(STORIES_HF)


@pytest.fixture(scope="session")
def tinystories_text() -> Path:
    return _need(TINYSTORIES_TEXT)


@pytest.fixture(scope="session")
def stories_backend(stories_hf):
    """The Transformers backend loaded on stories260K, shared by the tests that only read it."""
    from gearterm.backends.hf import HFBackend

    backend = HFBackend(str(stories_hf), device="cpu")
    backend.load()
    return backend


def local_pocket(kind: str, **settings):
    """The pocket model (in the package, no ../shared needed) on the CPU through the local backend
    `kind` ("hf" or "mlx"), loaded; `settings` go to the backend (context=...). MLX skips where
    mlx-lm is not importable."""
    from gearterm.models import POCKET_MODEL_DIR

    if kind == "mlx":
        pytest.importorskip("mlx_lm", reason="mlx-lm is not importable here: install gearterm[mlx]")
        from gearterm.backends.mlx import MLXBackend

        backend = MLXBackend(str(POCKET_MODEL_DIR), **settings)
    else:
        from gearterm.backends.hf import HFBackend

        backend = HFBackend(str(POCKET_MODEL_DIR), device="cpu", **settings)
    backend.load()
    return backend


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny Llama with random weights and its own byte-level tokenizer, built in a temp dir:
    for tests that need a loadable model directory but not real weights (no ../shared needed)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["Once upon a time there was a tiny model that shifted gears."] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(path)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=160,  # not a multiple of 128: exercises the padded last group
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    return path


# Runs in a child process so the server's threads never compete with the test's event loop.
_LLAMA_SERVER = """
import sys
import xllamacpp as xlc

p = xlc.CommonParams()
p.model.path = sys.argv[1]
p.n_ctx = 512
p.hostnames = ["127.0.0.1"]
p.port = 0  # a free port
p.verbosity = -1
# One thread: on a busy 2-core machine llama.cpp's spinning thread pool stalls for seconds.
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 1
# f32 attention and KV cache: top logprobs then agree with Transformers to ~1e-5 (see PROVENANCE.md).
p.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
p.cache_type_k = p.cache_type_v = xlc.ggml_type.GGML_TYPE_F32
server = xlc.Server(p)
print(server.listening_address, flush=True)
sys.stdin.read()  # serve until the test session closes our stdin (or dies)
"""


@pytest.fixture(scope="session")
def llama_server() -> str:
    """A real llama.cpp server (xllamacpp) on 127.0.0.1 serving stories260K-f32.gguf: its base URL."""
    import subprocess
    import sys

    gguf = _need(STORIES_GGUF)
    pytest.importorskip("xllamacpp", reason="xllamacpp (llama.cpp's server) is not installed")
    proc = subprocess.Popen(
        [sys.executable, "-c", _LLAMA_SERVER, str(gguf)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        pytest.fail(f"the llama.cpp server did not start (exit code {proc.wait()})")
    yield url
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
