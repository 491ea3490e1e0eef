#!/usr/bin/env bash
# One device call (about 4 minutes on an H100) that measures what issues #17, #20 and #21 ask of
# the H200: the decode table with its step split, the kernel table, the context sweep and
# lossless mode modelled on the 8B shape. Carry .whl and .devshared (tools/device_prelude.sh);
# results land under $OUT. Another card stops it at once unless ANY_GPU=1: the H100's figures
# are in docs/benchmarks already, and the session's device time is better kept for a later try.
. tools/device_prelude.sh || exit 1
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader)
[[ $gpu == *H200* || -n ${ANY_GPU:-} ]] || { echo "$gpu is not an H200: nothing run"; exit 3; }
nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton, transformers as t; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', t.__version__)" | tee -a "$OUT/gpu.txt"
bench="python3 -m gearterm.cli bench"
text=../shared/data/tinystories-valid-head/tinystories_val.txt
timeout 190 $bench decode --shape llama3-8b --profile --json-out "$OUT/decode.json" 2>&1 | tee "$OUT/decode.txt"
timeout 110 $bench kernels --json-out "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.txt"
timeout 100 $bench decode --shape llama3-8b --no-compile --tokens 128 --context-sweep 512,4096,16384,32768 \
    --json-out "$OUT/context.json" 2>&1 | tee "$OUT/context.txt"
timeout 110 $bench lossless --model gearterm/models/pocket --device cuda --rounds 3 --tokens 128 --text "$text" \
    --project-onto llama3-8b 2>&1 | tee "$OUT/lossless.txt"
