"""The context a local backend holds (backends.context_size): the model's, the user's setting,
or what fits in free memory, said in the load progress; on the real pocket model (context 512),
through the HF backend, MLX and `gearterm run --context`."""

import pytest
import torch

from gearterm.backends.base import BackendError
from gearterm.backends.context_size import choose, free_memory_bytes
from gearterm.backends.hf import HFBackend
from gearterm.cli import main
from gearterm.models import POCKET_MODEL_DIR

MB = 1_000_000
PER_POSITION = 131_072  # a Llama-3-8B in float16: 2 x 32 layers x 8 heads x 128 x 2 bytes


def test_the_models_context_where_it_fits_in_half_the_free_memory():
    size = choose(8192, PER_POSITION, free_bytes=4000 * MB)
    assert (size.positions, size.bytes) == (8192, 8192 * PER_POSITION)
    assert size.describe() == "KV cache 8,192 positions, 1.1 GB (the model's context)"


def test_a_longer_context_than_memory_allows_is_cut_to_half_the_free_memory_in_steps_of_256():
    size = choose(131_072, PER_POSITION, free_bytes=3000 * MB)
    assert size.positions == 11264  # 1.5 GB / 131,072 bytes = 11,444 positions, rounded down
    assert size.describe() == (
        "KV cache 11,264 positions, 1.5 GB (what fits in half the 3.0 GB free; the model's is 131,072)"
    )


def test_the_setting_wins_up_to_the_models_context():
    assert choose(131_072, PER_POSITION, 3000 * MB, requested=2000).why == "the context setting"
    assert choose(131_072, PER_POSITION, 3000 * MB, requested=2000).positions == 2000
    capped = choose(512, PER_POSITION, 3000 * MB, requested=4096)
    assert (capped.positions, capped.why) == (512, "the model's context; the setting asks for 4,096")


def test_what_memory_cannot_hold_is_a_clear_error():
    with pytest.raises(BackendError, match=r"^a KV cache of 65,536 positions takes 8.6 GB but 3.0 GB is free: set a smaller context"):
        choose(131_072, PER_POSITION, 3000 * MB, requested=65_536)
    with pytest.raises(BackendError, match=r"^20.0 MB of memory is free, too little for a KV cache of 256 positions \(33.6 MB\)"):
        choose(131_072, PER_POSITION, 20 * MB)


def test_free_memory_unknown_keeps_the_models_context():
    assert choose(4096, PER_POSITION, None).why == "the model's context; free memory unknown"


def test_free_memory_is_read_on_this_machine():
    free = free_memory_bytes(torch.device("cpu"))
    assert free is None or 0 < free < 2**50


def _load(backend):
    said = []
    backend.load(lambda fraction, text: said.append(text))
    return said[-1]


def test_the_pocket_model_holds_its_context_or_the_setting_and_says_so_as_it_loads():
    backend = HFBackend(str(POCKET_MODEL_DIR), device="cpu")
    # float32 on the CPU: 2 x 8 layers x 4 heads x 32 dims x 4 bytes a position
    assert _load(backend) == "ready: KV cache 2,048 positions, 16.8 MB (the model's context)"
    assert backend.max_positions == backend.model.positions == 2048
    backend = HFBackend(str(POCKET_MODEL_DIR), device="cpu", context=128)
    assert _load(backend) == "ready: KV cache 128 positions, 1.0 MB (the context setting)"
    assert backend.max_positions == backend.model.positions == 128


def test_mlx_holds_the_setting_and_says_so_as_it_loads():
    pytest.importorskip("mlx_lm", reason="mlx-lm is not importable here: install gearterm[mlx]")
    from gearterm.backends.mlx import MLXBackend

    backend = MLXBackend(str(POCKET_MODEL_DIR), context=128)
    # bfloat16 in MLX: 2 x 8 layers x 4 heads x 32 dims x 2 bytes a position
    assert _load(backend) == "ready: KV cache 128 positions, 0.5 MB (the context setting)"
    assert backend.max_positions == 128


def test_run_context_flag_bounds_the_prompt(capsys):
    prompt = "And the king heard the words of the prophet. " * 20
    code = main(["run", "--model", str(POCKET_MODEL_DIR), "--context", "64", "--prompt", prompt, "--max-tokens", "4"])
    err = capsys.readouterr().err
    assert code == 0
    assert "the newest message is too long for the 64-token context: the model sees its last 60 tokens" in err  # 64 less 4 for the reply
    code = main(["run", "--model", str(POCKET_MODEL_DIR), "--context", "8", "--prompt", "hi"])
    assert code == 2 and "--context must be 0 (the model's own, or what fits in free memory)" in capsys.readouterr().err
