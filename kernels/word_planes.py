"""The nested gear planes laid out for GPU kernels: eight int4 codes per 32-bit word.

Same planes, scales and zeros as gearterm.kernels.nested (its NestedWeight is the ground truth);
only the order of the codes differs, chosen for the tensor-core GEMV (gearterm.kernels.triton_gemv_mma):
- Word w of a group holds its channels 8w..8w+7, channel 8w + e in nibble NIBBLE_OF[e]
  (bits 4n..4n+3). One mask-or of the word then gives two codes as a pair of 16-bit floats
  (nibbles 0 and 4: channels 0 and 1; nibbles 2 and 6 after a shift by 8: channels 2 and
  3; likewise 1, 5 and 3, 7 for channels 4-7), and a pair of adjacent channels is what a
  tensor-core operand register holds, so x pairs up with the codes as it lies in memory.
- Rows come in tiles of 16: the words are stored [rows / 16, groups, 16 rows, wpg], so the
  16 rows that one matrix instruction covers read one contiguous block per group.
wpg = ceil(g / 8) is a group's number of words; rows are padded to a multiple of 16.
Channels past the group (or past `in`) and padded rows have code 0; the kernels mask them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gearterm.kernels.gear import Gear
from gearterm.kernels.nested import NestedWeight, _pack_nibbles, unpack_nibbles

NIBBLES = 8  # int4 codes per 32-bit word
NIBBLE_OF = (0, 4, 2, 6, 1, 5, 3, 7)  # channel 8w + e of a group sits in nibble NIBBLE_OF[e] of word w
TILE_ROWS = 16  # rows stored together, group by group
_ROWS_PER_CHUNK = 8192  # bounds the int64 temporaries when converting a large matrix


@dataclass
class WordPlanes:
    """One [out, in] weight in all gears, codes as int32 words in tiles of 16 rows."""

    weight: torch.Tensor  # [out, in], the original, bit-exact high gear
    h_words: torch.Tensor  # int32 [ceil(out / 16), groups, 16 * words_per_group]: tiles of 16 rows
    h_scale: torch.Tensor  # [out, groups]
    h_zero: torch.Tensor  # [out, groups]
    l_words: torch.Tensor  # as h_words
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
    """uint8 nibble pairs in channel order [out, in_padded // 2] -> int32 words in tiles."""
    wpg = words_per_group(group_size)
    packed = F.pad(packed, (0, 0, 0, -len(packed) % TILE_ROWS))
    shifts = 4 * torch.tensor(NIBBLE_OF, device=packed.device)
    out = []
    for rows in packed.split(_ROWS_PER_CHUNK):
        codes = unpack_nibbles(rows)[:, : groups * group_size].reshape(len(rows), groups, group_size)
        codes = F.pad(codes, (0, NIBBLES * wpg - group_size))
        codes = codes.reshape(len(rows), groups, wpg, NIBBLES).to(torch.int64)
        words = (codes << shifts).sum(-1)
        # Nibble 7 reaches bit 31: wrap to the int32 with the same bits.
        words = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
        tiles = words.reshape(len(rows) // TILE_ROWS, TILE_ROWS, groups, wpg).transpose(1, 2)
        out.append(tiles.reshape(len(rows) // TILE_ROWS, groups, TILE_ROWS * wpg))
    return torch.cat(out)


def _words_to_codes(words: torch.Tensor, out_features: int, group_size: int, packed_bytes: int) -> torch.Tensor:
    """The inverse of _codes_to_words: back to uint8 nibble pairs in channel order."""
    tiles, groups, _ = words.shape
    wpg = words_per_group(group_size)
    rows = words.reshape(tiles, groups, TILE_ROWS, wpg).transpose(1, 2).reshape(tiles * TILE_ROWS, groups, wpg, 1)
    shifts = 4 * torch.tensor(NIBBLE_OF, device=words.device)
    codes = ((rows.to(torch.int64) >> shifts) & 0xF).reshape(tiles * TILE_ROWS, groups, NIBBLES * wpg)
    codes = codes[:out_features, :, :group_size].reshape(out_features, groups * group_size)
    return _pack_nibbles(F.pad(codes, (0, 2 * packed_bytes - groups * group_size)))


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
    """Back to the reference layout, so gearterm.kernels.nested can check what the kernels compute."""
    out_features, in_features = planes.shape
    g, groups = planes.group_size, planes.groups
    padded_bytes = (groups * g + (groups * g) % 2) // 2

    def codes(words: torch.Tensor) -> torch.Tensor:
        return _words_to_codes(words, out_features, g, padded_bytes)

    return NestedWeight(
        planes.weight,
        codes(planes.h_words),
        planes.h_scale,
        planes.h_zero,
        codes(planes.l_words),
        planes.l_scale,
        g,
    )
