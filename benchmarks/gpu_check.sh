#!/usr/bin/env bash
# The trainer's GPU checks in one command, under 5 minutes, for the day a GPU is lent (CI has none):
#
#   1. the parity tests of the patched forward pass on CUDA (the torch ops are the path there;
#      the fused operator is CPU-only) and the operator's torch reference on CUDA;
#   2. a bfloat16 rollout-ratio run of benchmarks/rollout_throughput.py on CUDA (torch path side by side);
#   3. a 2-rank nccl run of `esfit train` under torchrun, when there are 2 GPUs (else skipped);
#   4. a short `esfit train` on the embedded SmolLM2 on CUDA;
#   5. the vLLM rollout benchmark (`rollout_throughput.py --backend vllm`, bfloat16), when a Python with
#      CUDA vLLM is there: $VLLM_PYTHON, else .venv-vllm/bin/python (install with pip install 'esfit[vllm]').
#
# Each step has its own time limit (45 + 60 + 50 + 50 + 90 s at most; typically far less), so the whole
# stays under 5 minutes even when one hangs (vLLM runs eager: no CUDA-graph capture at start). Prints one summary line, `gpu_check: parity=... rollout_ratio_bf16=... nccl=... train=... vllm=... (N s)`,
# and exits non-zero when a check failed. Without a CUDA device it says so and exits 0.
# Run from anywhere after `make install`:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
start=$SECONDS
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "$gpus" -lt 1 ]; then
    echo "gpu_check: skipped (no CUDA device)"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
step() {  # step NAME SECONDS COMMAND...: runs it with a time limit, its output in $work/NAME.log
    local name=$1 limit=$2
    shift 2
    if timeout "$limit" "$@" >"$work/$name.log" 2>&1; then return 0; fi
    echo "--- $name failed; the end of its output:" >&2
    tail -n 25 "$work/$name.log" >&2
    failed=1
    return 1
}

parity=fail
ESFIT_TEST_DEVICE=cuda step parity 45 "$PY" -m pytest -q -p no:cacheprovider tests/trainer/test_patch_parity.py \
    tests/trainer/test_kernel.py::test_on_cuda_the_operator_runs_its_torch_reference && parity=pass
parity="$parity($(grep -Eo '[0-9]+ passed' "$work/parity.log" | head -1 | tr ' ' '_'))"

ratio=fail
if step rollout 60 "$PY" benchmarks/rollout_throughput.py --device cuda --dtype bfloat16 --skip-naive --torch-path \
        --repeats 2; then
    ratio=$(grep -Eo 'rollout_ratio=[0-9.]+' "$work/rollout.log" | cut -d= -f2)
    torch_ratio=$(grep -Eo 'fused kernel: ratio [0-9.]+' "$work/rollout.log" | grep -Eo '[0-9.]+$')
    [ -n "$torch_ratio" ] && ratio="$ratio(torch-path_$torch_ratio)"
fi

train_args=(train --config datasets/demo/train.toml --device cuda --generations 2 --quiet)
nccl="skip(1_GPU)"
if [ "$gpus" -ge 2 ]; then
    nccl=fail
    step nccl 50 "$PY" -m torch.distributed.run --standalone --nproc_per_node=2 -m esfit "${train_args[@]}" \
        --output-dir "$work/nccl" && nccl=pass
fi

train=fail
step train 50 "$PY" -m esfit "${train_args[@]}" --output-dir "$work/train" && train=pass

vllm="skip(no_CUDA_vLLM)"
VPY=${VLLM_PYTHON:-.venv-vllm/bin/python}
if "$VPY" -c "import torch, vllm; assert torch.cuda.is_available()" >/dev/null 2>&1; then
    vllm=fail
    if step vllm 90 "$VPY" benchmarks/rollout_throughput.py --backend vllm --device cuda --dtype bfloat16 \
            --repeats 2 --vllm-options '{"gpu_memory_utilization": 0.5, "enforce_eager": true}'; then
        vllm=$(tail -n 1 "$work/vllm.log" | tr ' ' ',')
    fi
fi

echo "gpu_check: parity=$parity rollout_ratio_bf16=$ratio nccl=$nccl train=$train vllm=$vllm ($((SECONDS - start)) s)"
exit $failed
