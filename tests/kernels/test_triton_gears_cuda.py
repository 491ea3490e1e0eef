"""The compiled gear kernels on a GPU against kernels.nested's reference (the same shapes as
the interpreter tests plus model-sized ones, in every input dtype), and the CUDA-graph
decoder against the eager one. Skipped without CUDA."""

import importlib

import pytest
import torch

from kernels.gear import Gear

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True, scope="module")
def _compiled_kernels():
    """The interpreter tests may have imported the kernels interpreted in this process."""
    from triton.runtime.interpreter import InterpretedFunction

    for name, kernel in [("kernels.triton_gears", "_gemv_kernel"), ("kernels.triton_rmsnorm", "_rms_norm_kernel")]:
        module = importlib.import_module(name)
        if isinstance(getattr(module, kernel), InterpretedFunction):
            importlib.reload(module)

SHAPES = [(5, 37), (13, 300), (7, 100), (3, 1), (4096, 4096), (1024, 14336)]
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1e-2}  # relative to the output's max


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("batch", [1, 2, 33])
def test_compiled_kernels_match_reference(shape, batch):
    from kernels.matmul import geared_matmul
    from kernels.nested import pack, reference_matmul
    from kernels.word_planes import to_word_planes

    torch.manual_seed(batch)
    nw = pack(torch.randn(*shape, device="cuda") * 0.02)
    planes = to_word_planes(nw)
    for dtype, rtol in TOLERANCE.items():
        x = torch.randn(batch, shape[1], device="cuda", dtype=dtype)
        for gear in (Gear.LOW, Gear.MID):
            y = geared_matmul(x, planes, gear)
            ref = reference_matmul(x.double(), nw, gear)
            assert y.dtype == dtype and torch.isfinite(y).all()
            err = (y.double() - ref).abs().max().item()
            assert err <= rtol * ref.abs().max().item(), (dtype, gear, err)


def test_graph_decoder_replays_the_eager_tokens(stories_hf):
    from transformers import AutoModelForCausalLM

    from backends.cuda_decoder import GraphDecoder
    from backends.geared_linear import decoder_layers, gear_decoder_layers
    from kernels.gear import GearSelector
    from backends.hf import EagerDecoder

    model = AutoModelForCausalLM.from_pretrained(stories_hf, dtype=torch.float32).to("cuda").eval()
    selector = GearSelector(Gear.HIGH)
    gear_decoder_layers(decoder_layers(model, model.config.num_hidden_layers), selector)
    tokens = {}
    for name, decoder in [("eager", EagerDecoder(model)), ("graph", GraphDecoder(model, selector, 64))]:
        logits, tokens[name] = decoder.prefill([1, 400, 34])[-1], []
        for _ in range(16):
            token = logits.argmax(-1)
            tokens[name].append(int(token))
            logits = decoder.step(token)
    assert tokens["graph"] == tokens["eager"]
