"""gearterm.kernels.entropy.logit_readings (the decode step's readings, computed in rows of the
vocabulary) against entropy_varentropy, torch.logsumexp and torch.argmax over the whole [V]."""

import math

import pytest
import torch

from gearterm.kernels.entropy import READING_ROW, entropy_varentropy, logit_readings


def expected(logits: torch.Tensor) -> list[float]:
    h, varentropy = entropy_varentropy(logits)
    return [float(logits.argmax()), h.item(), varentropy.item(), torch.logsumexp(logits.float(), -1).item()]


@pytest.mark.parametrize("vocab", [7, READING_ROW, READING_ROW + 1, 32000, 128256])
@pytest.mark.parametrize("spread", [0.1, 6.5, 40.0])  # near uniform, a model's, one-hot
def test_readings_equal_the_whole_vocabulary_figures(vocab, spread):
    torch.manual_seed(vocab)
    for dtype in (torch.float32, torch.float16):
        logits = (torch.randn(vocab) * spread).to(dtype)
        got = logit_readings(logits).tolist()
        want = expected(logits)
        assert got[0] == want[0]
        assert got[1] == pytest.approx(want[1], rel=1e-4, abs=1e-4)  # bits
        assert got[2] == pytest.approx(want[2], rel=1e-3, abs=1e-3)  # bits^2
        assert got[3] == pytest.approx(want[3], rel=1e-6, abs=1e-5)


def test_argmax_takes_the_first_of_equal_logits_across_rows():
    logits = torch.zeros(3 * READING_ROW + 5)
    logits[[READING_ROW + 3, 2 * READING_ROW, 5]] = 9.0
    assert logit_readings(logits)[0].item() == 5
    logits[5] = 0.0
    assert logit_readings(logits)[0].item() == READING_ROW + 3


def test_non_finite_logits_are_anomalies_as_in_entropy_varentropy():
    logits = torch.randn(3000)
    masked = logits.clone()
    masked[100:2000] = float("-inf")
    kept = torch.cat([logits[:100], logits[2000:]])
    got, want = logit_readings(masked), logit_readings(kept)
    assert math.isnan(got[1].item()) and math.isnan(entropy_varentropy(masked)[0].item())
    assert torch.allclose(got[2:], want[2:], rtol=1e-5, atol=1e-5)  # -inf logits weigh nothing
    assert got[0].item() == want[0].item() + (1900 if want[0].item() >= 100 else 0)
    nan = logits.clone()
    nan[7] = float("nan")
    assert math.isnan(logit_readings(nan)[1].item())
