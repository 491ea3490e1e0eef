"""What the high gear reads on the loaded backend: the weights as loaded, which are 32-bit on a
CPU by default (Transformers) and 16-bit on a GPU or MLX, not always the "16" of its name.

Capabilities does not carry it yet, so it is read from the loaded model's first parameter
(the embedding, which keeps the dtype the checkpoint was loaded in, as the high gear's weights
do); a server backend routes to a model variant and says nothing: None.
"""

from __future__ import annotations

from gearterm.backends.base import Backend

BITS = {"float32": 32, "float16": 16, "bfloat16": 16}


def high_gear_dtype(backend: Backend) -> str | None:
    model = getattr(backend, "model", None)
    if model is None or not callable(getattr(model, "parameters", None)):
        return None
    parameters = model.parameters()
    if isinstance(parameters, dict):  # MLX: a tree of arrays
        from mlx.utils import tree_flatten

        parameters = (array for _, array in tree_flatten(parameters))
    first = next(iter(parameters), None)
    return None if first is None else str(first.dtype).rsplit(".", 1)[-1]


def high_gear_bits(dtype: str | None) -> int:
    """Bits per weight the high gear reads: 16 where the backend does not say."""
    return BITS.get(dtype or "", 16)
