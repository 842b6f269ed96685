#!/usr/bin/env bash
# The replay and targets tests under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Builds hrlkit._core with HRLKIT_SANITIZE=ON (CMakeLists.txt) into its own build tree, lays out
# a package of the Python sources with that module beside them, and runs the tests with the ASan
# runtime preloaded. The installed package is never touched, so the editable install stays the
# normal Release build. Any ASan error or UB aborts the test process with a report on stderr.
#
#   benchmarks/sanitizers.sh                      # tests/test_replay*.py and tests/test_targets.py
#   benchmarks/sanitizers.sh tests/test_replay.py -k save    # other pytest arguments
#
# Environment: BUILD (default build/sanitize), JOBS (default 2), CXX (the compiler, default c++).
# ASAN_OPTIONS: detect_leaks=0, since CPython leaks by design at exit; allocator_may_return_null=1,
# so that a huge allocation fails as std::bad_alloc (as it does without ASan) instead of aborting.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/sanitize}
JOBS=${JOBS:-2}
PY=${PYTHON:-python}
CXX=${CXX:-c++}

generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
  -DHRLKIT_SANITIZE=ON -DHRLKIT_CUDA=OFF -DPython_EXECUTABLE="$(command -v "$PY")" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" > "$BUILD.configure.log" 2>&1 \
  || { tail -30 "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS"

# The sources, with the sanitized module in place of the installed one.
rm -rf "$BUILD/pkg" "$BUILD/site"
mkdir -p "$BUILD/pkg/hrlkit" "$BUILD/site"
for f in "$ROOT"/python/hrlkit/*; do
  case "$(basename "$f")" in _core.*.so|_cuda.*.so|__pycache__) ;; *) ln -s "$f" "$BUILD/pkg/hrlkit/" ;; esac
done
cp "$BUILD"/_core.*.so "$BUILD/pkg/hrlkit/"
# An editable install serves `hrlkit` through an import hook ahead of sys.path; drop it for these
# runs (subprocesses included: they inherit PYTHONPATH) so the package above is the one imported.
cat > "$BUILD/site/sitecustomize.py" <<PY
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "ScikitBuildRedirectingFinder"]
sys.path.insert(0, "$BUILD/pkg")
PY

# The ASan runtime must come first; libstdc++ too, since python itself does not link it and ASan
# resolves its __cxa_throw interceptor at start-up (without it the first C++ exception aborts).
LIBASAN=$("$CXX" -print-file-name=libasan.so)
LIBSTDCXX=$("$CXX" -print-file-name=libstdc++.so)
for lib in "$LIBASAN" "$LIBSTDCXX"; do
  [[ -f "$lib" ]] || { echo "sanitizers.sh: $CXX has no $(basename "$lib") (got '$lib')" >&2; exit 1; }
done
export LD_PRELOAD="$LIBASAN:$LIBSTDCXX${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PYTHONPATH="$BUILD/site${PYTHONPATH:+:$PYTHONPATH}"

module=$("$PY" -c "import hrlkit._core as c; print(c.__file__)")
[[ "$module" == "$BUILD/pkg/"* ]] || { echo "sanitizers.sh: imported $module, not the sanitized build" >&2; exit 1; }
echo "sanitizers.sh: testing $module (ASan + UBSan)"
cd "$ROOT"
if [[ $# -eq 0 ]]; then
  set -- tests/test_replay.py tests/test_replay_hardening.py tests/test_targets.py
fi
"$PY" -m pytest -q -p no:cacheprovider "$@"
