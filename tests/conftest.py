import os
import tempfile

# Keep Hypothesis' failing-example patches out of the repository.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "hrlkit-hypothesis"))
