"""Next-token entropy and varentropy in bits, computed on the logits' device."""

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def entropy_varentropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shannon entropy H = -sum p log2 p and varentropy Var[-log2 p] over the last dim.

    One pass over the log-probabilities; float32 regardless of the logits' dtype.
    NaN or Inf logits give a NaN entropy, which the gear policy treats as an anomaly.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    # 0 * -inf is NaN: a token with probability zero contributes nothing.
    plogp = torch.where(p > 0, p * logp, 0.0)
    h = -plogp.sum(-1)
    second = torch.where(p > 0, p * logp * logp, 0.0).sum(-1)
    bad = ~torch.isfinite(logits).all(-1)
    h = torch.where(bad, torch.nan, h)
    return h / LN2, (second - h * h).clamp_min(0) / (LN2 * LN2)


READING_ROW = 1024  # logits a row when logit_readings splits the vocabulary


def logit_readings(logits: torch.Tensor) -> torch.Tensor:
    """What one step reports of its logits [V], as one float32 tensor on their device:
    [argmax id, entropy bits, varentropy bits^2, log-sum-exp]; entropy_varentropy's figures.

    On a GPU this runs inside the decode step's graph, compiled. The vocabulary is cut into
    rows of READING_ROW so that every reduction runs over many programs: written over [V]
    in one piece, inductor made it one 26 us kernel on an H100 (a single program for 128,256
    logits), where the rows take a few of about 2 us. In the rows, with t the largest logit
    and d = logit - t: log-sum-exp = t + log S0, entropy = log S0 - S1 / S0 and varentropy =
    Var[d] = S2 / S0 - (S1 / S0)^2, where Sk = sum of exp(d) d^k."""
    vocab = logits.shape[-1]
    rows = -(-vocab // READING_ROW)
    x = F.pad(logits.float(), (0, rows * READING_ROW - vocab), value=float("-inf")).view(rows, READING_ROW)
    row_max, row_argmax = x.max(-1)  # the first largest of each row
    top, top_row = row_max.max(0)  # the first row holding the largest: torch.argmax's choice
    # gather, not row_argmax[top_row]: indexing with a 0-d tensor reads it on the host.
    argmax = top_row * READING_ROW + row_argmax.gather(0, top_row.reshape(1))[0]
    d = x - top
    weight = torch.exp(d)
    kept = weight > 0  # exp(-inf) is 0, and 0 * -inf would be NaN
    s0 = weight.sum(-1).sum()
    s1 = torch.where(kept, weight * d, 0.0).sum(-1).sum()
    s2 = torch.where(kept, weight * d * d, 0.0).sum(-1).sum()
    mean = s1 / s0
    h = torch.log(s0) - mean
    h = torch.where(torch.isfinite(logits).all(), h, torch.nan)  # the policy's anomaly
    varentropy = (s2 / s0 - mean * mean).clamp_min(0)
    lse = top + torch.log(s0)
    return torch.stack([argmax.float(), h / LN2, varentropy / (LN2 * LN2), lse])  # ids < 2**24: exact
