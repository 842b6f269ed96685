#!/usr/bin/env bash
# Everything issue 7 measures on the lent GPU machine, in one call (see benchmarks/gpu/README.md):
# install the carried wheels (gymnasium, MuJoCo, SB3), build hrlkit with its CUDA module, run the
# CUDA tests, then the PER and SPS benchmarks. Results go to $OUT (or ./gpu_out).
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
t0=$(date +%s)
python3 -m pip install -q --no-build-isolation --no-deps . > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
python3 -c "import hrlkit._cuda, hrlkit; print('built in', $(date +%s) - $t0, 's; _cuda ok')"
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  timeout 240 python3 -m pytest -q -x -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/tests.log" | tail -25
fi
[[ "${SKIP_PER:-0}" == 1 ]] || timeout 200 python3 benchmarks/gpu/gpu_benchmarks.py per --json "$OUT/per.json" 2>&1 | tail -20
[[ "${SKIP_SPS:-0}" == 1 ]] || timeout 300 python3 benchmarks/gpu/gpu_benchmarks.py sps --steps "${SPS_STEPS:-2000}" --cpu-steps "${CPU_STEPS:-1000}" --runs "${SPS_RUNS:-graph,eager,host,cpu,sb3}" --profile --json "$OUT/sps.json" 2>&1 | tail -20
