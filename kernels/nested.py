"""The nested gear format: all three gears of one weight matrix resident at once.

Plane H holds asymmetric int4 codes per group of input channels (scale and zero per
group); plane L holds int4 codes of the residual w - dequant(H) with its own scale per
group. The low gear reads H, the mid gear H + L, the high gear the original weight.
A shift changes which planes the next matmul reads; nothing is requantized or copied.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gearterm.kernels.gear import Gear

GROUP_SIZE = 128
SCALE_DTYPE = torch.float16  # 4 bytes of scales per plane per group: ~3% over the codes
L_CENTER = 7.5  # plane L codes 0..15 stand for -7.5..+7.5 steps: a residual is symmetric


@dataclass
class NestedWeight:
    """One [out, in] weight in all gears. Codes are packed two per byte along `in`
    (low nibble = even channel); `in` is zero-padded to a whole number of groups."""

    weight: torch.Tensor  # [out, in], the original, bit-exact high gear
    h_codes: torch.Tensor  # uint8 [out, in_padded // 2]
    h_scale: torch.Tensor  # [out, groups]
    h_zero: torch.Tensor  # [out, groups]: the value that code 0 stands for
    l_codes: torch.Tensor  # uint8 [out, in_padded // 2]
    l_scale: torch.Tensor  # [out, groups]
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    def nbytes(self, gear: Gear) -> int:
        """Bytes a matmul at this gear reads: codes plus scales, or the original weight."""
        if gear == Gear.HIGH:
            return self.weight.numel() * self.weight.element_size()
        planes = [(self.h_codes, self.h_scale, self.h_zero)]
        if gear == Gear.MID:
            planes.append((self.l_codes, self.l_scale))
        return sum(t.numel() * t.element_size() for plane in planes for t in plane)


def group_size_for(in_features: int, group_size: int = GROUP_SIZE) -> int:
    return in_features if in_features < group_size else group_size


def _pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    codes = codes.to(torch.uint8)
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [out, n/2] -> uint8 codes [out, n]."""
    return torch.stack((packed & 0xF, packed >> 4), dim=-1).flatten(-2)


def pack(weight: torch.Tensor, group_size: int = GROUP_SIZE) -> NestedWeight:
    """Build planes H and L from a float weight [out, in]; the weight itself is kept as is."""
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"expected a 2-D float weight, got {tuple(weight.shape)} {weight.dtype}")
    out_features, in_features = weight.shape
    g = group_size_for(in_features, group_size)
    groups = -(-in_features // g)
    padded = groups * g + (groups * g) % 2
    w = F.pad(weight.detach().float(), (0, padded - in_features))
    wg = w[:, : groups * g].reshape(out_features, groups, g)
    # Padding channels are zeros; they must not widen a group's range.
    real = (torch.arange(groups * g, device=w.device) < in_features).reshape(groups, g)
    lo = torch.where(real, wg, torch.inf).amin(-1)
    hi = torch.where(real, wg, -torch.inf).amax(-1)

    # Round scales to their stored dtype first, so codes are chosen against what is stored.
    h_scale = ((hi - lo) / 15).to(SCALE_DTYPE)
    h_zero = lo.to(SCALE_DTYPE)
    s, z = h_scale.float().unsqueeze(-1), h_zero.float().unsqueeze(-1)
    h = torch.where(s > 0, ((wg - z) / s).round(), 0).clamp(0, 15)
    residual = wg - (h * s + z)

    l_scale = (torch.where(real, residual.abs(), 0).amax(-1) / L_CENTER).to(SCALE_DTYPE)
    ls = l_scale.float().unsqueeze(-1)
    l = torch.where(ls > 0, (residual / ls + L_CENTER).round(), 0).clamp(0, 15)

    def to_codes(c: torch.Tensor) -> torch.Tensor:
        c = F.pad(c.reshape(out_features, groups * g), (0, padded - groups * g))
        return _pack_nibbles(c)

    return NestedWeight(weight, to_codes(h), h_scale, h_zero, to_codes(l), l_scale, g)


def dequantize(nw: NestedWeight, gear: Gear, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The weight a matmul at `gear` computes with, [out, in]."""
    dtype = dtype or nw.weight.dtype
    if gear == Gear.HIGH:
        return nw.weight.to(dtype)
    out_features, in_features = nw.weight.shape
    g, groups = nw.group_size, nw.h_scale.shape[1]

    def plane(codes: torch.Tensor) -> torch.Tensor:
        return unpack_nibbles(codes)[:, : groups * g].float().reshape(out_features, groups, g)

    w = plane(nw.h_codes) * nw.h_scale.float().unsqueeze(-1) + nw.h_zero.float().unsqueeze(-1)
    if gear == Gear.MID:
        w = w + (plane(nw.l_codes) - L_CENTER) * nw.l_scale.float().unsqueeze(-1)
    return w.reshape(out_features, groups * g)[:, :in_features].to(dtype)


def reference_matmul(x: torch.Tensor, nw: NestedWeight, gear: Gear) -> torch.Tensor:
    """x @ W_gear^T on any device: the ground truth the fused kernels are tested against."""
    return F.linear(x, dequantize(nw, gear, x.dtype))
