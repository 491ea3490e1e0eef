"""Next-token entropy and varentropy in bits, computed on the logits' device."""

import math

import torch

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


def logit_readings(logits: torch.Tensor) -> torch.Tensor:
    """What one step reports of its logits [V], as one float32 tensor on their device:
    [argmax id, entropy bits, varentropy bits^2, log-sum-exp]. On a GPU this runs inside the
    decode step's graph, where inductor fuses it into a few reductions; computed after the
    graph it was a dozen small kernels (about 150 us a token for a 128K vocabulary)."""
    h, varentropy = entropy_varentropy(logits)
    lse = torch.logsumexp(logits.float(), -1)
    return torch.stack([logits.argmax(-1).float(), h, varentropy, lse])  # ids < 2**24: exact
