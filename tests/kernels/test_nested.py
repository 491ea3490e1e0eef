"""The nested gear format: round trips, error bounds per gear, and the reference matmul."""

import pytest
import torch
from safetensors.torch import load_file

from gearterm.kernels.gear import Gear
from gearterm.kernels.nested import GROUP_SIZE, dequantize, pack, reference_matmul, unpack_nibbles


def rms(x: torch.Tensor) -> float:
    return x.float().pow(2).mean().sqrt().item()


@pytest.mark.parametrize("shape", [(64, 128), (33, 256), (17, 300), (8, 64), (5, 1), (3, 130)])
def test_error_bounds_per_gear(shape):
    torch.manual_seed(0)
    w = torch.randn(shape)
    nw = pack(w)
    low, mid, high = (dequantize(nw, g) for g in Gear)
    assert torch.equal(high, w)  # the high gear is the original weight, bit-exact
    assert low.shape == mid.shape == w.shape
    # Each code's error is at most half a step of its plane (plus fp16 rounding of the scales).
    step_h = (nw.h_scale.float().repeat_interleave(nw.group_size, 1)[:, : shape[1]])
    assert ((low - w).abs() <= step_h / 2 * 1.01 + 1e-3).all()
    step_l = nw.l_scale.float().repeat_interleave(nw.group_size, 1)[:, : shape[1]]
    assert ((mid - w).abs() <= step_l / 2 * 1.01 + 1e-4).all()
    if shape[1] > 1:
        assert rms(mid - w) <= rms(low - w) / 8


def test_group_is_k_below_128_and_128_above():
    assert pack(torch.randn(4, 100)).group_size == 100
    assert pack(torch.randn(4, 1000)).group_size == GROUP_SIZE
    nw = pack(torch.randn(4, 1000))
    assert nw.h_scale.shape == (4, 8)  # 1000 channels: 7 full groups and one padded
    assert nw.h_codes.shape == (4, 512) and nw.h_codes.dtype == torch.uint8


def test_constant_and_zero_groups_are_exact():
    w = torch.zeros(3, 256)
    w[1] = 0.25
    for gear in Gear:
        assert torch.equal(dequantize(pack(w), gear), w)


def test_padding_does_not_widen_the_last_group():
    """A group padded with zeros must quantize over its real channels only."""
    w = torch.full((2, 130), 5.0)
    w[:, 128:] = torch.tensor([5.0, 6.0])
    nw = pack(w)
    assert (dequantize(nw, Gear.LOW)[:, 128:] - w[:, 128:]).abs().max() < 0.05


def test_nibbles_round_trip():
    codes = torch.randint(0, 16, (7, 64), dtype=torch.uint8)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    assert torch.equal(unpack_nibbles(packed), codes)


def test_bytes_read_per_gear():
    nw = pack(torch.randn(256, 512, dtype=torch.float16))
    high, mid, low = nw.nbytes(Gear.HIGH), nw.nbytes(Gear.MID), nw.nbytes(Gear.LOW)
    assert high == 256 * 512 * 2
    assert low < high / 3.5 and mid < high / 1.8  # a quarter and a half, plus scales


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_reference_matmul_matches_dequantized_linear(dtype):
    torch.manual_seed(1)
    w = torch.randn(48, 200).to(dtype)
    x = torch.randn(3, 200).to(dtype)
    nw = pack(w)
    for gear in Gear:
        expected = x.double() @ dequantize(nw, gear, torch.float64).T
        got = reference_matmul(x, nw, gear).double()
        rel = (got - expected).norm() / expected.norm()
        assert rel < (1e-5 if dtype == torch.float32 else 1e-2)


def test_error_ratio_on_real_weights(stories_hf):
    """Mid-gear RMS error is at most 1/8 of the low gear's on every projection of the real model."""
    weights = load_file(stories_hf / "model.safetensors")
    projections = [k for k in weights if "layers" in k and k.endswith("proj.weight")]
    assert len(projections) == 35
    for name in projections:
        w = weights[name]
        nw = pack(w)
        low_err = rms(dequantize(nw, Gear.LOW) - w)
        mid_err = rms(dequantize(nw, Gear.MID) - w)
        assert mid_err <= low_err / 8, name
