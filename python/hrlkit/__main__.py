"""``python -m hrlkit``: the same as the ``hrlkit`` command."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
