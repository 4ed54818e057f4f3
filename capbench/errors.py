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


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) caught by the CLI: it takes the Ctrl-C path (records kept, a
    launched server stopped), is recorded by name, and exits with 128 + the signal number (143, 129)."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")


def interruption(exc: BaseException) -> str:
    """How an interruption is recorded in ``run.json`` ``error``: the signal by name."""
    if isinstance(exc, Terminated):
        return f"stopped by {exc.name} (signal {exc.signum})"
    return "interrupted by the user (Ctrl-C, SIGINT)"


def interruption_exit_code(exc: BaseException) -> int:
    """The conventional exit status: 128 + signal number (130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + exc.signum if isinstance(exc, Terminated) else 130


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception as one line: its type and the last non-empty line of its message (where the reason is),
    keeping the last ``limit`` characters when given."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    name = type(exc).__name__
    text = f"{name}: {lines[-1]}" if lines and not lines[-1].startswith(name) else (lines[-1] if lines else name)
    return text if limit is None else text[-limit:]
