"""Packaging (issue 15, item 5): py.typed and the LICENSE ship, the metadata names the license and
classifiers, TOML configs work on Python 3.10 (tomli), HRLKIT_CUDA reaches CMake from the
environment, the sdist leaves the result figures out, and cibuildwheel builds CPU manylinux wheels.

Runs from a source checkout and against an installed wheel (cibuildwheel's test-command); the
checks of pyproject.toml and the sdist skip where there is no source tree beside the tests."""
from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import subprocess
import sys
import tarfile

import pytest

import hrlkit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYPROJECT = os.path.join(ROOT, "pyproject.toml")
needs_source = pytest.mark.skipif(not os.path.isfile(PYPROJECT), reason="no source tree beside the tests")
MIT_LINE = "Copyright (c) 2026 the hrlkit authors"
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License",
    "Operating System :: POSIX :: Linux",
    "Programming Language :: C++",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
    "Typing :: Typed",
}


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)


def _editable(dist: importlib.metadata.Distribution) -> bool:
    text = dist.read_text("direct_url.json")
    return bool(text) and json.loads(text).get("dir_info", {}).get("editable", False)


def test_py_typed_ships_in_the_package():
    assert (importlib.resources.files("hrlkit") / "py.typed").is_file()
    assert (importlib.resources.files("hrlkit") / "_core.pyi").is_file()


@needs_source
def test_license_file_and_metadata_in_pyproject():
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert text.startswith("MIT License") and MIT_LINE in text
    project = _pyproject()["project"]
    assert project["license"] == {"text": "MIT"}
    assert CLASSIFIERS <= set(project["classifiers"])
    assert project["version"] == hrlkit.__version__


def test_installed_metadata():
    dist = importlib.metadata.distribution("hrlkit")
    if _editable(dist):
        pytest.skip("an editable install's metadata dates from its `pip install -e`; checked on the built wheel")
    meta = dist.metadata
    assert meta["Version"] == hrlkit.__version__ and meta["License"] == "MIT"
    assert CLASSIFIERS <= set(meta.get_all("Classifier"))
    licenses = [f for f in dist.files if f.name == "LICENSE"]
    assert licenses and MIT_LINE in licenses[0].read_text()
    assert any(str(f).replace("\\", "/") == "hrlkit/py.typed" for f in dist.files)


@needs_source
def test_tomli_only_where_tomllib_is_missing():
    Requirement = pytest.importorskip("packaging.requirements").Requirement
    reqs = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    (tomli,) = [r for r in reqs if r.name == "tomli"]
    assert tomli.marker.evaluate({"python_version": "3.10"})
    assert not tomli.marker.evaluate({"python_version": "3.11"})
    assert not tomli.marker.evaluate({"python_version": "3.12"})


def test_toml_config_loads(tmp_path):
    from hrlkit.runtime.config import load_config_file

    path = tmp_path / "c.toml"
    path.write_text('learning_rate = 0.001\nhidden_sizes = [32, 32]\n')
    assert load_config_file(str(path)) == {"learning_rate": 0.001, "hidden_sizes": [32, 32]}


@needs_source
def test_hrlkit_cuda_from_the_environment(monkeypatch):
    reader = pytest.importorskip("scikit_build_core.settings.skbuild_read_settings")
    monkeypatch.delenv("HRLKIT_CUDA", raising=False)
    settings = reader.SettingsReader.from_file(PYPROJECT, state="wheel").settings
    assert "HRLKIT_CUDA" not in settings.cmake.define  # CMake's own default (AUTO) applies
    monkeypatch.setenv("HRLKIT_CUDA", "OFF")
    assert reader.SettingsReader.from_file(PYPROJECT, state="wheel").settings.cmake.define["HRLKIT_CUDA"] == "OFF"
    on = reader.SettingsReader.from_file(PYPROJECT, {"cmake.define.HRLKIT_CUDA": "ON"}, state="wheel").settings
    assert on.cmake.define["HRLKIT_CUDA"] == "ON"  # -C cmake.define... wins over the environment


@needs_source
def test_cibuildwheel_configuration():
    cibw = _pyproject()["tool"]["cibuildwheel"]
    assert cibw["build"].split() == ["cp310-*", "cp311-*", "cp312-*"]
    assert {"*-musllinux_*", "*_i686"} <= set(cibw["skip"].split())
    linux = cibw["linux"]
    assert linux["archs"] == ["x86_64", "aarch64"]
    assert linux["environment"]["HRLKIT_CUDA"] == "OFF"
    assert linux["repair-wheel-command"].startswith("auditwheel repair")
    tests = [a.replace("{project}", ROOT) for a in cibw["test-command"].split() if a.startswith("{project}/")]
    assert tests and all(os.path.isfile(t) for t in tests)


@needs_source
def test_sdist_leaves_out_result_figures(tmp_path):
    pytest.importorskip("scikit_build_core")
    build = subprocess.run(
        [sys.executable, "-c", f"import scikit_build_core.build as b; print(b.build_sdist({str(tmp_path)!r}))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    with tarfile.open(tmp_path / build.stdout.strip().splitlines()[-1]) as tar:
        members = {m.name.split("/", 1)[1]: m.size for m in tar.getmembers() if m.isfile()}
    for needed in ("pyproject.toml", "LICENSE", "README.md", "CMakeLists.txt", "python/hrlkit/py.typed",
                   "python/hrlkit/__main__.py", "csrc/bindings/module.cpp", "benchmarks/wheel_check.sh"):
        assert needed in members, needed
    results = {name: size for name, size in members.items() if name.startswith("benchmarks/results/")}
    assert results and any(name.endswith("table.md") for name in results)  # the small summaries stay
    assert not [n for n in results if n.endswith((".png", ".log")) or "/runs/" in n]
    assert not [n for n, size in results.items() if size > 256 * 1024], "large result files belong out of the sdist"
    assert not any(n.startswith("build/") for n in members)
