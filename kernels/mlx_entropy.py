"""Next-token entropy and varentropy in bits, computed in MLX on the logits' device."""

import math

import mlx.core as mx

LN2 = math.log(2.0)


def entropy_varentropy(logits: mx.array) -> tuple[mx.array, mx.array]:
    """Shannon entropy H = -sum p log2 p and varentropy Var[-log2 p] over the last axis.

    The MLX twin of gearterm.kernels.entropy.entropy_varentropy: lazy, float32 whatever the logits'
    dtype, NaN entropy when any logit is NaN or Inf (the gear policy's anomaly signal).
    """
    x = logits.astype(mx.float32)
    logp = x - mx.logsumexp(x, axis=-1, keepdims=True)
    p = mx.exp(logp)
    # 0 * -inf is NaN: a token with probability zero contributes nothing.
    h = -mx.where(p > 0, p * logp, 0.0).sum(-1)
    second = mx.where(p > 0, p * logp * logp, 0.0).sum(-1)
    h = mx.where(mx.isfinite(x).all(-1), h, mx.nan)
    return h / LN2, mx.maximum(second - h * h, 0.0) / (LN2 * LN2)
