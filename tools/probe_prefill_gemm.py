"""Where a prompt chunk's gear matmul switches from the Triton GEMM to dequantize + cuBLAS
(kernels.triton_gears.DEQUANTIZE_ROWS): both timed at 2 to 2,048 rows on Llama-3-8B projection
shapes, fp16, on a CUDA GPU. Run from the repository root: python3 tools/probe_prefill_gemm.py"""

import time

import torch
import torch.nn.functional as F

from gearterm.kernels import nested
from gearterm.kernels.gear import Gear
from gearterm.kernels.triton_gears import dequantize, gear_matmul, gemm_config
from gearterm.kernels.word_planes import to_word_planes

dev = torch.device("cuda")
torch.manual_seed(0)


def ms(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / reps


for n, k in [(6144, 4096), (28672, 4096), (4096, 14336)]:
    w = torch.randn(n, k, device=dev, dtype=torch.float16) * 0.02
    planes = to_word_planes(nested.pack(w))
    for gear in (Gear.LOW, Gear.MID):
        row = []
        for m in (2, 4, 8, 16, 32, 64, 256, 2048):
            x = torch.randn(m, k, device=dev, dtype=torch.float16)
            gemm = ms(lambda: gear_matmul(x, planes, gear, gemm_config(m, n, k, gear)))
            deq = ms(lambda: F.linear(x, dequantize(planes, gear, x.dtype)))
            row.append(f"{m}: {gemm:.3f}/{deq:.3f}")
        print(f"{n}x{k} {gear.label} gemm/dequant ms", " ".join(row), flush=True)
    del w, planes
