"""``python -m capbench.testing.mock_server``."""

from capbench.testing.mock_server.cli import main

main()
