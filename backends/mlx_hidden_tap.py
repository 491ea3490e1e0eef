"""Each MLX decoder layer's output at the newest position: what the activation entropy gate
reads once per token, the MLX counterpart of gearterm.backends.hidden_tap.

MLX modules have no forward hooks, and a call goes through the class's __call__, so each
layer becomes an instance of a small subclass of its own class whose __call__ also keeps its
output's last row. The layer stays the same object with the same parameters and attributes
(models read some, such as `use_sliding`, while they run). The rows are lazy arrays: they
are computed in the step's one mx.eval, with the logits."""

from __future__ import annotations

import functools

import mlx.core as mx
import mlx.nn as nn


@functools.cache
def _tapped_class(cls: type) -> type:
    def __call__(self, *args, **kwargs):
        output = cls.__call__(self, *args, **kwargs)
        tap = self._hidden_tap  # a plain attribute, as MLX keeps only arrays and modules as parameters
        if tap.recording:
            hidden = output[0] if isinstance(output, tuple) else output  # [batch, positions, d]
            tap.rows[self._hidden_tap_row] = hidden[0, -1]
        return output

    return type(f"Tapped{cls.__name__}", (cls,), {"__call__": __call__})


class MLXHiddenStateTap:
    def __init__(self, layers: list[nn.Module]):
        self.layers = list(layers)
        self.rows: list[mx.array | None] = [None] * len(self.layers)
        # Off outside generation: teacher forcing would otherwise keep every layer's whole
        # [positions, d] output alive through the last rows' views.
        self.recording = False
        for row, layer in enumerate(self.layers):
            layer._hidden_tap, layer._hidden_tap_row = self, row
            layer.__class__ = _tapped_class(type(layer))

    def take(self) -> mx.array:
        """The rows of the latest forward pass, stacked [L, d] in float32 (lazy), and forget
        them so the layers' outputs can be freed once this is evaluated."""
        if any(row is None for row in self.rows):
            raise RuntimeError("the hidden state tap has no rows: no forward pass ran while it recorded")
        hidden = mx.stack(self.rows).astype(mx.float32)
        self.rows = [None] * len(self.layers)
        return hidden

    def remove(self) -> None:
        for layer in self.layers:
            layer.__class__ = type(layer).__mro__[1]
            del layer._hidden_tap, layer._hidden_tap_row
        self.layers, self.rows = [], []
