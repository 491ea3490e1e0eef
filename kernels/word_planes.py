"""The nested gear planes laid out for GPU kernels: eight int4 codes per 32-bit word.

Same planes, scales and zeros as kernels.nested (its NestedWeight is the ground truth);
only the code order differs. Within each group of `g` input channels, word w holds in
its nibble j (bits 4j..4j+3) the code of channel j * wpg + w, where wpg = ceil(g / 8) is
the group's number of words. So for a fixed nibble j, consecutive words hold consecutive
channels: a kernel that extracts nibble j of a row of words multiplies it by a contiguous
run of x, which it loads with one vector load instead of eight strided ones.
Channels past the group (or past `in`) have code 0 and are masked out of x by the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kernels.gear import Gear
from kernels.nested import NestedWeight, _pack_nibbles, unpack_nibbles

NIBBLES = 8  # int4 codes per 32-bit word
_ROWS_PER_CHUNK = 8192  # bounds the int64 temporaries when converting a large matrix


@dataclass
class WordPlanes:
    """One [out, in] weight in all gears, codes as int32 words [out, groups * wpg]."""

    weight: torch.Tensor  # [out, in], the original, bit-exact high gear
    h_words: torch.Tensor  # int32 [out, groups * words_per_group]
    h_scale: torch.Tensor  # [out, groups]
    h_zero: torch.Tensor  # [out, groups]
    l_words: torch.Tensor  # int32 [out, groups * words_per_group]
    l_scale: torch.Tensor  # [out, groups]
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    @property
    def groups(self) -> int:
        return self.h_scale.shape[1]

    @property
    def words_per_group(self) -> int:
        return words_per_group(self.group_size)

    def nbytes(self, gear: Gear) -> int:
        """Bytes a matmul at this gear reads: codes plus scales, or the original weight."""
        if gear == Gear.HIGH:
            return self.weight.numel() * self.weight.element_size()
        planes = [(self.h_words, self.h_scale, self.h_zero)]
        if gear == Gear.MID:
            planes.append((self.l_words, self.l_scale))
        return sum(t.numel() * t.element_size() for plane in planes for t in plane)


def words_per_group(group_size: int) -> int:
    return -(-group_size // NIBBLES)


def _codes_to_words(packed: torch.Tensor, groups: int, group_size: int) -> torch.Tensor:
    """uint8 nibble pairs in channel order [out, in_padded // 2] -> interleaved int32 words."""
    wpg = words_per_group(group_size)
    out = []
    for rows in packed.split(_ROWS_PER_CHUNK):
        codes = unpack_nibbles(rows)[:, : groups * group_size].reshape(len(rows), groups, group_size)
        codes = F.pad(codes, (0, NIBBLES * wpg - group_size))
        # [rows, groups, nibble j, word w]: channel j * wpg + w of the group.
        codes = codes.reshape(len(rows), groups, NIBBLES, wpg).to(torch.int64)
        shifts = (4 * torch.arange(NIBBLES, device=codes.device)).reshape(NIBBLES, 1)
        words = (codes << shifts).sum(2)
        # Nibble 7 reaches bit 31: wrap to the int32 with the same bits.
        words = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
        out.append(words.reshape(len(rows), groups * wpg))
    return torch.cat(out)


def _words_to_codes(words: torch.Tensor, groups: int, group_size: int, packed_bytes: int) -> torch.Tensor:
    """The inverse of _codes_to_words: back to uint8 nibble pairs in channel order."""
    wpg = words_per_group(group_size)
    shifts = (4 * torch.arange(NIBBLES, device=words.device)).reshape(NIBBLES, 1)
    w = words.to(torch.int64).reshape(len(words), groups, 1, wpg)
    codes = ((w >> shifts) & 0xF).reshape(len(words), groups, NIBBLES * wpg)[:, :, :group_size]
    codes = F.pad(codes.reshape(len(words), groups * group_size), (0, 2 * packed_bytes - groups * group_size))
    return _pack_nibbles(codes)


def to_word_planes(nw: NestedWeight) -> WordPlanes:
    """Re-lay a NestedWeight's codes for the GPU kernels; scales and zeros are shared, not copied."""
    groups = nw.h_scale.shape[1]
    return WordPlanes(
        nw.weight,
        _codes_to_words(nw.h_codes, groups, nw.group_size),
        nw.h_scale,
        nw.h_zero,
        _codes_to_words(nw.l_codes, groups, nw.group_size),
        nw.l_scale,
        nw.group_size,
    )


def to_nested(planes: WordPlanes) -> NestedWeight:
    """Back to the reference layout, so kernels.nested can check what the kernels compute."""
    out_features, in_features = planes.shape
    g, groups = planes.group_size, planes.groups
    padded_bytes = (groups * g + (groups * g) % 2) // 2

    def codes(words: torch.Tensor) -> torch.Tensor:
        return _words_to_codes(words, groups, g, padded_bytes)

    return NestedWeight(
        planes.weight,
        codes(planes.h_words),
        planes.h_scale,
        planes.h_zero,
        codes(planes.l_words),
        planes.l_scale,
        g,
    )
