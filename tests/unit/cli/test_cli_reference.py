"""docs/cli.md, the flag reference, is generated from the parsers and must be current: a flag added to a
command without regenerating the page fails here."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO as ROOT


def test_cli_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_every_flag_is_in_the_reference() -> None:
    """Independent of the generator: every option string of every capbench parser appears in docs/cli.md."""
    import argparse

    from capbench.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()

    def options(parser: argparse.ArgumentParser) -> set[str]:
        found: set[str] = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found |= options(sub)
            elif action.help is not argparse.SUPPRESS:
                found |= {o for o in action.option_strings if o not in ("-h", "--help")}
        return found

    flags = options(build_parser())
    assert len(flags) > 50
    missing = sorted(flag for flag in flags if f"`{flag}" not in text)
    assert not missing, f"flags missing from docs/cli.md: {missing}"
