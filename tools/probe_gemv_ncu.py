"""Where the batch-1 gear GEMV's time goes, from the hardware counters: each decoder shape's low and
mid gear GEMV (gearterm.kernels.triton_gemv_mma, the decoder's settings), its loads without its
products (the probe LOADS_ONLY), the same with the codes by bulk copies (the experiment TMA, 3
stages; Hopper and later) and cuBLAS fp16 beside them,
one call each inside cudaProfilerStart/Stop, so that Nsight Compute reads those calls and no other
(warm-up calls compile and run outside the range).
Run from the repository root on a CUDA GPU, under ncu (METHOD.md: leave the clocks alone):
ncu --clock-control none --profile-from-start off --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section MemoryWorkloadAnalysis python3 tools/probe_gemv_ncu.py"""

import torch
import torch.nn.functional as F

from gearterm.kernels.gear import Gear
from gearterm.kernels.nested import pack
from gearterm.kernels.triton_gears import gear_matmul
from gearterm.kernels.word_planes import to_word_planes

SHAPES = [(28672, 4096), (4096, 14336), (6144, 4096), (4096, 4096)]  # gate/up stacked, down, q/k/v, o

torch.manual_seed(0)
cudart = torch.cuda.cudart()
for n, k in SHAPES:
    w = torch.randn(n, k, device="cuda", dtype=torch.float16) * 0.02
    x = torch.randn(1, k, device="cuda", dtype=torch.float16)
    planes = to_word_planes(pack(w))
    calls = {"cuBLAS fp16": lambda: F.linear(x, w)}
    calls |= {f"{gear.name.lower()} gear": lambda gear=gear: gear_matmul(x, planes, gear) for gear in (Gear.LOW, Gear.MID)}
    probe = {"LOADS_ONLY": True}
    calls |= {f"{g.name.lower()} gear, loads only": lambda g=g: gear_matmul(x, planes, g, probe) for g in (Gear.LOW, Gear.MID)}
    if torch.cuda.get_device_capability() >= (9, 0):
        calls |= {f"{g.name.lower()} gear, TMA": lambda g=g: gear_matmul(x, planes, g, {"TMA": 3}) for g in (Gear.LOW, Gear.MID)}
    for name, call in calls.items():
        for _ in range(3):
            call()
        torch.cuda.synchronize()
        print(f"profiled: {n}x{k} {name}", flush=True)
        cudart.cudaProfilerStart()
        call()
        torch.cuda.synchronize()
        cudart.cudaProfilerStop()
