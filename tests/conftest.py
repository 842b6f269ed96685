import os
import tempfile

# Keep Hypothesis' failing-example patches out of the repository.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "hrlkit-hypothesis"))

import pytest


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Runs that default to ./runs write into the test's own temporary folder."""
    monkeypatch.chdir(tmp_path)
