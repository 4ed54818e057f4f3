"""The exceptions capbench raises for bad input.

A :class:`CapbenchError` carries a message meant for the user: it names what is wrong and how to fix it.
The CLI prints it without a traceback and exits with status 2.
"""


class CapbenchError(Exception):
    """A user-facing error: bad configuration, missing dependency, unknown name."""


class ConfigError(CapbenchError):
    """A run or sweep configuration that does not validate."""


class MissingDependencyError(CapbenchError):
    """An optional dependency is not installed; the message says which extra provides it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python module '{module}', which is not installed. "
            f"Install it with: pip install 'capbench[{extra}]'"
        )
        self.module = module
        self.extra = extra
