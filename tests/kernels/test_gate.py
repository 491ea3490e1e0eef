"""The gate's vectorized metrics against the per-vector numpy + scipy + zlib loop they replace."""

import os
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gearterm.kernels.gate import GateThresholds, byte_entropy, gate_metrics, histogram_counts, histogram_entropy

REPO = Path(__file__).resolve().parents[2]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def loop_counts(v: np.ndarray) -> np.ndarray | None:
    """numpy.histogram's counts, or None where it refuses the vector."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return np.histogram(v, 64)[0]
    except ValueError:
        return None


def loop_gate(v: np.ndarray) -> tuple[float, float, float]:
    """(entropy, zlib ratio, byte entropy / 8) of one float32 vector, as the seed computed them;
    a refused histogram gives a NaN entropy."""
    counts = loop_counts(v)
    entropy = np.nan if counts is None else scipy.stats.entropy(counts, base=2) / np.log2(64)
    raw = v.astype(np.float32).tobytes()
    byte_counts = np.bincount(np.frombuffer(raw, np.uint8), minlength=256)
    return entropy, len(zlib.compress(raw, 6)) / len(raw), scipy.stats.entropy(byte_counts, base=2) / 8


def check_against_loop(rows: np.ndarray, device: str) -> None:
    """Every path: gate_metrics (numpy on the CPU, fused Triton on CUDA) and the torch ops."""
    x = torch.from_numpy(rows).to(device)
    exact, fast = gate_metrics(x, "exact"), gate_metrics(x, "fast")
    counts, refused = histogram_counts(x)
    torch_entropy, torch_bytes = histogram_entropy(x), byte_entropy(x)
    for i, v in enumerate(rows):
        entropy, ratio, bytes_h = loop_gate(v)
        expected_counts = loop_counts(v)
        assert bool(refused[i]) == (expected_counts is None), v
        if expected_counts is not None:
            np.testing.assert_array_equal(counts[i].cpu().numpy(), expected_counts)
        for got in (exact.entropy[i].item(), fast.entropy[i].item(), torch_entropy[i].item()):
            assert (np.isnan(got) and np.isnan(entropy)) or abs(got - entropy) < 1e-12, (v, got, entropy)
        assert exact.compressibility[i].item() == ratio
        assert abs(fast.compressibility[i].item() - bytes_h) < 1e-12
        assert abs(torch_bytes[i].item() - bytes_h) < 1e-12
        assert bool(exact.passed[i]) == bool(entropy <= 0.8 and ratio <= 0.9)
        assert bool(fast.passed[i]) == bool(entropy <= 0.8 and bytes_h <= 0.9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d", [1, 2, 3, 63, 64, 65, 128, 500])
def test_random_vectors_match_the_loop(device, d):
    rng = np.random.default_rng(d)
    rows = np.concatenate(
        [
            rng.standard_normal((6, d)),
            rng.standard_normal((3, d)) * 1e-3,
            rng.standard_normal((3, d)) * 1e25,
            np.round(rng.standard_normal((6, d)), 1),  # many ties: values on bin edges
            rng.integers(-2, 3, (6, d)) * 0.25,
            np.linspace(-1, 1, d)[None].repeat(2, 0),  # evenly spread: edges hit exactly
            rng.uniform(1.0, 1.00002, (4, d)),  # a range of a few float32 steps: often refused
        ]
    ).astype(np.float32)
    check_against_loop(rows, device)


@pytest.mark.parametrize("device", DEVICES)
def test_adversarial_vectors_match_the_loop(device):
    d = 16
    tiny = np.finfo(np.float32).smallest_subnormal
    big = np.finfo(np.float32).max
    rows = [
        np.zeros(d),
        np.full(d, -0.0),
        np.full(d, 1.0),
        np.full(d, -3.5),
        np.full(d, 1e8),  # constant, and +-0.5 is lost in float32: numpy refuses
        np.eye(d)[3],  # one-hot
        np.r_[np.zeros(d - 1), np.nan],
        np.r_[np.ones(d - 1), np.inf],
        np.r_[np.ones(d - 1), -np.inf],
        np.full(d, np.nan),
        np.r_[-big, big, np.zeros(d - 2)],  # the range overflows float32
        np.r_[np.zeros(d - 1), tiny],  # a subnormal range: numpy's step underflows to zero
        np.arange(d) * tiny,
        np.r_[np.zeros(d - 1), 1e-30],
    ]
    check_against_loop(np.array(rows, dtype=np.float32), device)


@pytest.mark.parametrize("device", DEVICES)
def test_single_element_vectors(device):
    rows = np.array([[0.0], [5.0], [np.nan], [np.inf], [-1e-40]], dtype=np.float32)
    check_against_loop(rows, device)
    assert histogram_entropy(torch.from_numpy(rows[:2])).tolist() == [0.0, 0.0]


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 40)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    )
)
def test_any_float32_vectors_match_the_loop(rows):
    check_against_loop(rows, "cpu")


def test_one_hot_passes_and_noise_fails():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.stack([np.eye(128)[5], rng.standard_normal(128)]).astype(np.float32))
    for mode in ("exact", "fast"):
        assert gate_metrics(x, mode).passed.tolist() == [True, False]


def test_thresholds_decide():
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((50, 64)).astype(np.float32))
    m = gate_metrics(x, "fast", GateThresholds(entropy=1.0, compressibility=1.0))
    assert m.passed.all()
    loose = gate_metrics(x, "fast", GateThresholds(entropy=float(m.entropy.median()), compressibility=1.0))
    assert loose.passed.tolist() == (m.entropy <= m.entropy.median()).tolist()


def test_byte_entropy_of_half_precision_is_of_its_float32_bytes():
    x = torch.randn(4, 32).to(torch.bfloat16)
    assert torch.equal(byte_entropy(x), byte_entropy(x.float()))


@pytest.mark.parametrize("shape", [(3, 0), (8,)])
def test_rejects_what_is_not_a_batch_of_vectors(shape):
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        gate_metrics(torch.zeros(shape))


def test_unknown_mode():
    with pytest.raises(ValueError, match="fast or exact"):
        gate_metrics(torch.zeros(2, 2), "approximate")


def test_fused_triton_kernel_matches_torch_in_the_interpreter():
    """Triton's interpreter runs the fused kernel on the CPU (no GPU here); on a GPU the
    same comparison runs compiled in the benchmark."""
    pytest.importorskip("triton")
    script = textwrap.dedent(
        """
        import numpy as np, torch
        from gearterm.kernels.gate import histogram_entropy, byte_entropy
        from gearterm.kernels.gate_triton import fused_gate_metrics
        rng = np.random.default_rng(0)
        for d in (1, 5, 64, 100):
            v = rng.standard_normal((6, d)).astype(np.float32)
            v[1] = 3.0; v[2, 0] = np.nan; v[3] = rng.uniform(1, 1.00002, d); v[4] = 0; v[5, : d // 2] = 0
            x = torch.from_numpy(v)
            e, c = fused_gate_metrics(x)
            assert torch.allclose(e, histogram_entropy(x), rtol=0, atol=1e-12, equal_nan=True), (d, e)
            assert torch.allclose(c, byte_entropy(x), rtol=0, atol=1e-12), (d, c)
        print("ok")
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
