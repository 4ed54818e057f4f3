"""``python -m capbench`` is the ``capbench`` command."""

from capbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
