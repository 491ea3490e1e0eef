"""The compiled gear kernels on a GPU against kernels.nested's reference: the same shapes as
the interpreter tests plus model-sized ones, in every input dtype. Skipped without CUDA."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SHAPES = [(5, 37), (13, 300), (7, 100), (3, 1), (4096, 4096), (1024, 14336)]
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1e-2}  # relative to the output's max


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("batch", [1, 2, 33])
def test_compiled_kernels_match_reference(shape, batch):
    from kernels.gear import Gear
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
