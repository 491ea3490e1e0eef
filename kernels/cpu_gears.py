"""The low and mid gear matrix-vector product on an x86 CPU, straight from the packed codes.

Rebuilding the float weight from the codes on every call (kernels.nested's reference) costs
more than reading the float weight itself, and torch's own int4/int8 weight-only CPU kernels
ran slower than a float32 GEMV on this project's AVX2 machines. This kernel reads the nibble
codes once (0.5 byte a weight in the low gear, 1 byte in the mid gear), converts them in
registers and multiplies with AVX2/FMA:

    y[o] = sum_g  scale[o,g] * (codes_g . x_g) + zero[o,g] * sum(x_g)            (low)
         + sum_g  l_scale[o,g] * (l_codes_g . x_g - 7.5 * sum(x_g))             (mid adds)

x is permuted once per call so that each 16-byte load of codes (32 channels, even channels
in the low nibbles) meets its channels as two contiguous runs. It is compiled for the machine
it runs on, once (torch.utils.cpp_extension, cached under ~/.cache/torch_extensions); where
that cannot happen, or the CPU lacks AVX2, `available()` is False and the reference runs.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sysconfig
from pathlib import Path

import torch

from gearterm.kernels.gear import Gear
from gearterm.kernels.nested import NestedWeight

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// codes . x over one group: `bytes` bytes of nibble pairs against x permuted in blocks of 32
// channels (16 even, then 16 odd).
static inline float dot_group(const uint8_t* codes, const float* xp, int64_t bytes) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const __m128i mask = _mm_set1_epi8(0x0F);
    for (int64_t j = 0; j < bytes; j += 16) {
        __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + j));
        __m128i lo = _mm_and_si128(b, mask);
        __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
        const float* x = xp + 2 * j;
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), _mm256_loadu_ps(x), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), _mm256_loadu_ps(x + 8), acc1);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), _mm256_loadu_ps(x + 16), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), _mm256_loadu_ps(x + 24), acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

// xp [rows, padded] permuted x; xsum [rows, groups]; codes uint8 [out, padded / 2];
// scales and zeros float32 [out, groups]. Mid gear when l_codes is not empty.
torch::Tensor gear_gemv(torch::Tensor xp, torch::Tensor xsum, torch::Tensor h_codes, torch::Tensor h_scale,
                        torch::Tensor h_zero, torch::Tensor l_codes, torch::Tensor l_scale, int64_t group_size) {
    const int64_t rows = xp.size(0), out = h_codes.size(0), groups = h_scale.size(1), bytes = group_size / 2;
    const int64_t padded = xp.size(1), row_bytes = h_codes.size(1);
    const bool mid = l_codes.numel() > 0;
    auto y = torch::empty({rows, out}, xp.options());
    const float* X = xp.data_ptr<float>(); const float* XS = xsum.data_ptr<float>();
    const uint8_t* H = h_codes.data_ptr<uint8_t>(); const float* HS = h_scale.data_ptr<float>();
    const float* HZ = h_zero.data_ptr<float>(); float* Y = y.data_ptr<float>();
    const uint8_t* L = mid ? l_codes.data_ptr<uint8_t>() : nullptr;
    const float* LS = mid ? l_scale.data_ptr<float>() : nullptr;
    at::parallel_for(0, out, 16, [&](int64_t begin, int64_t end) {
        for (int64_t r = 0; r < rows; ++r) {
            const float* x = X + r * padded; const float* xs = XS + r * groups;
            for (int64_t o = begin; o < end; ++o) {
                float acc = 0.f;
                for (int64_t g = 0; g < groups; ++g) {
                    const int64_t at = o * groups + g;
                    acc += HS[at] * dot_group(H + o * row_bytes + g * bytes, x + g * group_size, bytes) + HZ[at] * xs[g];
                    if (mid)  // plane L's codes stand for code - 7.5 steps (kernels.nested.L_CENTER)
                        acc += LS[at] * (dot_group(L + o * row_bytes + g * bytes, x + g * group_size, bytes) - 7.5f * xs[g]);
                }
                Y[r * out + o] = acc;
            }
        }
    });
    return y;
}
"""


_CFLAGS = ["-O3", "-mavx2", "-mfma"]


def extension_name() -> str:
    """The build's name, and so its folder under ~/.cache/torch_extensions: one for each source,
    flags, torch install and Python. torch keeps one build a name and rebuilds it when the last
    one came from another install (torch's and Python's include paths are in its flags): two
    environments sharing one name rebuilt the kernel, 18-34 s on two cores, each time the other
    had run."""
    key = [_SOURCE, *_CFLAGS, torch.__version__, os.path.dirname(torch.__file__), sysconfig.get_paths()["include"]]
    return "gearterm_cpu_gears_" + hashlib.sha256("\n".join(key).encode()).hexdigest()[:16]


@functools.cache
def _module():
    from torch.utils import cpp_extension

    return cpp_extension.load_inline(
        name=extension_name(), cpp_sources=_SOURCE, functions=["gear_gemv"], extra_cflags=_CFLAGS, verbose=False
    )


def built() -> bool:
    """Whether `available()` has already been answered in this process (so calling it is quick
    or it would not build anything): the first call may compile for a minute."""
    return available.cache_info().currsize > 0


def compiled_before() -> bool:
    """Whether an earlier process built this kernel (its library is in torch's extensions folder,
    under a name that changes with its source and flags): loading it then takes 0.2 s on two cores,
    not the minute a build does. False where that cannot be told: the folder's rule is torch's own."""
    from torch.utils import cpp_extension

    name = extension_name()  # a hash of the source and flags: made once
    try:
        folder = Path(cpp_extension._get_build_directory(name, verbose=False))
    except Exception:
        return False
    return (folder / f"{name}.so").is_file()


@functools.cache
def available() -> bool:
    """An x86 CPU with AVX2 and a compiler that builds the kernel (tried once, then cached)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return False
    try:
        _module()
    except Exception:  # no compiler, no ninja: the reference runs instead
        return False
    return True


def fits(nw: NestedWeight) -> bool:
    """Groups the kernel's 16-byte loads tile exactly (32 channels at a time)."""
    return nw.group_size % 32 == 0 and nw.h_codes.device.type == "cpu"


@functools.cache
def _permutation(padded: int) -> torch.Tensor:
    """Channel order per block of 32: the 16 even channels, then the 16 odd ones."""
    block = torch.cat([torch.arange(0, 32, 2), torch.arange(1, 32, 2)])
    return (torch.arange(0, padded, 32)[:, None] + block[None]).reshape(-1)


def gear_matmul(x: torch.Tensor, nw: NestedWeight, gear: Gear) -> torch.Tensor:
    """x [..., in] @ W_gear^T for the low or mid gear, computed in float32. The planes' scales
    and zeros must be float32 (GearedLinear stores them so where this kernel runs)."""
    lead, in_features = x.shape[:-1], x.shape[-1]
    padded = 2 * nw.h_codes.shape[1]
    rows = x.reshape(-1, in_features).float()
    if padded != in_features:
        rows = torch.nn.functional.pad(rows, (0, padded - in_features))
    xsum = rows.view(rows.shape[0], -1, nw.group_size).sum(-1)
    xp = rows.index_select(1, _permutation(padded))
    if gear == Gear.MID:
        l_codes, l_scale = nw.l_codes, nw.l_scale
    else:
        l_codes, l_scale = nw.l_codes.new_empty(0), nw.l_scale.new_empty(0)
    y = _module().gear_gemv(xp, xsum, nw.h_codes, nw.h_scale, nw.h_zero, l_codes, l_scale, nw.group_size)
    return y.reshape(*lead, -1).to(x.dtype)
