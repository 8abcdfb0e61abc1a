#!/usr/bin/env bash
# GPU check of the device setting (harness/devices.py), for a machine with a CUDA GPU; not run by the test suite.
#
#   HARNESS_DATA_DIR=../shared/data bash bench/gpu_smoke.sh [output folder]     (default runs/gpu_smoke/<time>)
#
# 1. the device tests on the GPU: every model an eval run and the labeler create is on cuda in bfloat16
#    (HARNESS_TEST_DEVICE=auto pytest tests/integration/test_devices_tiny.py);
# 2. harness-pipeline pipeline=smoke device=auto: every stage, the trainers through accelerate;
# 3. harness-eval on the pipeline's checkpoints, device=auto and then device=cpu (the same evals, for the timings);
# then asserts that run.json and results/evals.json record a cuda device (and bfloat16 on a GPU with native
# bf16), and prints the stage and eval timings. Exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export HARNESS_DATA_DIR="${HARNESS_DATA_DIR:-../shared/data}"
OUT="${1:-runs/gpu_smoke/$(date +%Y-%m-%d_%H-%M-%S)}"
PY="${PYTHON:-python}"
BIN="$(dirname "$(command -v "$PY")")"

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: this check needs a GPU")'
"$PY" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| native bf16:", torch.cuda.is_bf16_supported(including_emulation=False))'

echo "== 1. device tests on the GPU"
HARNESS_TEST_DEVICE=auto "$PY" -m pytest -q -p no:cacheprovider tests/integration/test_devices_tiny.py tests/unit/test_devices.py

echo "== 2. harness-pipeline pipeline=smoke device=auto -> $OUT/pipeline"
mkdir -p "$OUT"
start=$SECONDS
"$BIN/harness-pipeline" pipeline=smoke device=auto "hydra.run.dir=$OUT/pipeline" > "$OUT/pipeline.log" 2>&1 || { tail -30 "$OUT/pipeline.log"; exit 1; }
echo "harness-pipeline: $((SECONDS - start)) s wall"

CK="$OUT/pipeline/checkpoints"
EVAL_ARGS=(model=tiny "+policies.base=$CK/base" "+policies.sft=$CK/sft" "+policies.ppo=$CK/ppo"
           "+eval.judges.reward_models.helpful=$CK/judge_helpful" "+eval.judges.reward_models.harmless=$CK/judge_harmless"
           data.n_eval_prompts=8 eval.batch_size=4 eval.bootstrap_resamples=200
           eval.judges.validation.n_hh_pairs=16 eval.judges.validation.n_gpt4_pairs=16 eval.judges.validation.n_davidson=200
           evals.winrate.decoding.max_new_tokens=16 evals.truthfulqa.n=4 evals.truthfulqa.mc_limit=4
           evals.truthfulqa.decoding.max_new_tokens=12 evals.toxicity.n=4 evals.toxicity.decoding.max_new_tokens=8
           evals.toxicity.num_samples=2 evals.hallucination.n=4 evals.hallucination.decoding.max_new_tokens=16
           evals.alignment_tax.limit=8 evals.likert.n_calibration=16)  # the eval sizes of conf/pipeline/smoke.yaml
for dev in auto cpu; do
  echo "== 3. harness-eval device=$dev -> $OUT/eval_$dev"
  start=$SECONDS
  "$BIN/harness-eval" "${EVAL_ARGS[@]}" "device=$dev" "eval.cache_dir=$OUT/eval_$dev/cache" "hydra.run.dir=$OUT/eval_$dev" \
      > "$OUT/eval_$dev.log" 2>&1 || { tail -30 "$OUT/eval_$dev.log"; exit 1; }
  echo "harness-eval device=$dev: $((SECONDS - start)) s wall"
done

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

import torch

out = Path(sys.argv[1])
bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
want = {"dtype": "bfloat16" if bf16 else "float32"}
run = json.loads((out / "pipeline" / "run.json").read_text())
checks = {"pipeline run.json": run["placement"],
          "pipeline results/evals.json": json.loads((out / "pipeline" / "results" / "evals.json").read_text())["placement"],
          "harness-eval device=auto evals.json": json.loads((out / "eval_auto" / "results" / "evals.json").read_text())["placement"]}
for where, placement in checks.items():
    assert placement["device"].startswith("cuda") and placement["dtype"] == want["dtype"], (where, placement)
    print(f"ok  {where}: {placement}")
cpu = json.loads((out / "eval_cpu" / "results" / "evals.json").read_text())["placement"]
assert cpu == {"device": "cpu", "dtype": "float32"}, cpu
print("ok  harness-eval device=cpu evals.json:", cpu)
print("\npipeline stage seconds (device=auto):", json.dumps(run["metrics"]["timings_s"]))
print("\neval seconds    device=auto  device=cpu")
auto, cpu = (json.loads((out / f"eval_{d}" / "results" / "evals.json").read_text())["evals"] for d in ("auto", "cpu"))
for name in auto:
    print(f"  {name:<14} {auto[name]['seconds']:>10.1f}  {cpu[name]['seconds']:>10.1f}")
EOF
