"""A drop-in for mlx.nn.Linear that holds every gear of its weight and calls the selected one."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_map_with_path

from gearterm.kernels.gear import GearSelector
from gearterm.kernels.gear import Gear

GROUP_SIZE = 64
QUANTIZED_BITS = {Gear.LOW: 4, Gear.MID: 8}


class GearedLinear(nn.Module):
    """High gear: the original nn.Linear, untouched, so its output is bit-exact. Low and mid
    gear: MLX's own affine quantization of that weight (4 and 8 bits, groups of 64 input
    channels), made once here and called through mx.quantized_matmul."""

    def __init__(self, linear: nn.Linear, selector: GearSelector, group_size: int = GROUP_SIZE):
        super().__init__()
        self.high = linear
        self.selector = selector  # a plain attribute: not a parameter, shared by every layer
        self.group_size = group_size
        self.out_features, self.in_features = linear.weight.shape
        # MLX quantizes whole groups only. Zero columns fill the last group, and the input
        # gets zeros in the same places at call time, so the padding adds nothing to x @ W^T.
        self.pad = -self.in_features % group_size
        weight = linear.weight
        if self.pad:
            weight = mx.pad(weight, [(0, 0), (0, self.pad)])
        for gear, bits in QUANTIZED_BITS.items():
            codes, scales, biases = mx.quantize(weight, group_size=group_size, bits=bits)
            setattr(self, gear.label, {"codes": codes, "scales": scales, "biases": biases})

    def __call__(self, x: mx.array) -> mx.array:
        gear = self.selector.gear
        if gear == Gear.HIGH:
            return self.high(x)
        q = self[gear.label]
        if self.pad:
            x = mx.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, self.pad)])
        y = mx.quantized_matmul(
            x, q["codes"], q["scales"], q["biases"],
            transpose=True, group_size=self.group_size, bits=QUANTIZED_BITS[gear],
        )
        return y + self.high.bias if "bias" in self.high else y

    def _extra_repr(self) -> str:
        pad = f", in padded to {self.in_features + self.pad}" if self.pad else ""
        return f"in={self.in_features}, out={self.out_features}, group_size={self.group_size}{pad}"

    def gear_nbytes(self, gear: Gear) -> int:
        """Bytes a call at this gear reads from this layer's weight (bias excluded)."""
        if gear == Gear.HIGH:
            return self.high.weight.nbytes
        return sum(a.nbytes for a in self[gear.label].values())


@dataclass(frozen=True)
class GearingReport:
    """What gear_decoder_layers did, in the words the model-info line uses."""

    geared: int  # projections that now shift gears
    padded: tuple[str, ...]  # "mlp.down_proj (in 172 -> 192)", once per name in a layer
    kept: tuple[str, ...]  # projections left as loaded (already quantized in the file), by name
    nbytes: dict[Gear, int]  # weight bytes the geared projections read at each gear
    share: float  # geared weight elements over every projection weight's elements in the layers

    def describe(self) -> str:
        text = (
            f"{self.geared} projections geared: low {QUANTIZED_BITS[Gear.LOW]}-bit, "
            f"mid {QUANTIZED_BITS[Gear.MID]}-bit (MLX affine, group {GROUP_SIZE}), high as loaded"
        )
        if self.padded:
            text += f"; zero-padded to whole groups for low/mid: {', '.join(self.padded)}"
        if self.kept:
            text += f"; {len(self.kept)} stored already quantized, kept as stored in every gear"
        return text


def gear_decoder_layers(layers, selector: GearSelector) -> GearingReport:
    """Swap every nn.Linear inside the decoder layers (attention and MLP projections) for a
    GearedLinear. Embeddings and the LM head live outside the layers and stay as they are."""
    geared, padded, kept = [], {}, []
    elements = {"geared": 0, "plain": 0}

    def swap(name: str, module):
        if isinstance(module, nn.QuantizedLinear):
            kept.append(name)
        if type(module) is not nn.Linear:
            elements["plain"] += _projection_elements(module)
            return module
        g = GearedLinear(module, selector)
        elements["geared"] += module.weight.size
        geared.append(g)
        if g.pad:
            padded.setdefault(name, f"in {g.in_features} -> {g.in_features + g.pad}")
        return g

    for layer in layers:
        layer.update_modules(tree_map_with_path(swap, layer.leaf_modules(), is_leaf=nn.Module.is_module))
    mx.eval([g.parameters() for g in geared])  # build every gear now, not at the first call
    return GearingReport(
        geared=len(geared),
        padded=tuple(f"{name} ({shape})" for name, shape in padded.items()),
        kept=tuple(kept),
        nbytes={gear: sum(g.gear_nbytes(gear) for g in geared) for gear in Gear},
        share=elements["geared"] / max(1, elements["geared"] + elements["plain"]),
    )


def _projection_elements(module) -> int:
    """Weight elements of a projection left as it is (a quantized Linear, mlx-lm's stacked
    experts); 0 for norms, whose weights are vectors."""
    weight = getattr(module, "weight", None)
    if weight is None or weight.ndim < 2:
        return 0
    if hasattr(module, "bits"):  # quantized: 32 / bits weights packed in each uint32
        return weight.size * 32 // module.bits
    return weight.size
