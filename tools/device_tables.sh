#!/usr/bin/env bash
# One device call (about 7 minutes) that measures what issues #17, #20 and #21 ask of the
# H200: the decode table with its step split, the kernel table, the context sweep, lossless
# mode modelled on the 8B shape, the gear GEMV's splits on the decoder's shapes, the decode
# attention's slice sizes (tools/probe_decode_attention.py) and the GPU tests (greedy GPU == CPU
# on the real models carried). Carry .whl and .devshared (tools/device_prelude.sh). The JSON
# tables land under $OUT, all printed text in $OUT/log.txt (a call brings back 8 files at
# most). Another card stops it at once unless ANY_GPU=1.
. tools/device_prelude.sh || exit 1
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader)
[[ $gpu == *H200* || -n ${ANY_GPU:-} ]] || { echo "$gpu is not an H200: nothing run"; exit 3; }
exec > >(tee "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv
python3 -c "import torch, triton, transformers as t; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', t.__version__)"
bench="python3 -m gearterm.cli bench"
text=../shared/data/tinystories-valid-head/tinystories_val.txt
timeout 190 $bench decode --shape llama3-8b --profile --json-out "$OUT/decode.json"
timeout 110 $bench kernels --json-out "$OUT/kernels.json"
timeout 100 $bench decode --shape llama3-8b --no-compile --tokens 128 --context-sweep 512,4096,16384,32768 \
    --json-out "$OUT/context.json"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/backends/test_gpu_equals_cpu.py \
    tests/backends/test_lossless_cuda.py tests/kernels/test_triton_gears_cuda.py tests/backends/test_cuda_decoder_chunks.py
timeout 110 $bench lossless --model gearterm/models/pocket --device cuda --rounds 3 --tokens 128 --text "$text" \
    --project-onto llama3-8b
timeout 120 $bench kernels --sweep --batch 1 --impl low --impl mid --shape 6144x4096 --shape 4096x4096 \
    --shape 28672x4096 --shape 4096x14336 --json-out "$OUT/sweep.json" | grep -v BLOCK_N
timeout 80 python3 tools/probe_decode_attention.py
