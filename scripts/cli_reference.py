"""Write docs/cli.md, the reference of every command-line flag, from the commands' own argparse parsers.

Usage::

    .venv/bin/python scripts/cli_reference.py           # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check   # exit 1 if docs/cli.md is out of date (the suite runs this)

The page lists each command and subcommand of ``capbench``, then the mock and faulty servers' commands, with
every option's spellings, its argument and its help text as ``--help`` prints it (defaults expanded). Nothing
is written by hand, so a flag cannot be added without appearing in the docs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"

HEADER = """# Command-line reference

Every command and flag, generated from the commands' own parsers by `scripts/cli_reference.py` (the test suite
fails when this page is out of date). The guides (README, docs/vllm.md, docs/loadgen.md, docs/sweep.md, ...)
explain when to use them; `COMMAND --help` prints the same text.
"""


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _argument(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if not action.option_strings:
        return f"`{formatter._metavar_formatter(action, action.dest)(1)[0]}`"
    if action.nargs == 0:
        return ", ".join(f"`{option}`" for option in action.option_strings)
    metavar = formatter._format_args(action, action.dest.upper())
    return ", ".join(f"`{option} {metavar}`" for option in action.option_strings)


def _help(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if not action.help:
        return ""
    text = " ".join(formatter._expand_help(action).split())
    return text.replace("|", "\\|")


def _section(prog: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    formatter = parser._get_formatter()
    lines = [f"{'#' * level} `{prog}`", ""]
    description = (parser.description or "").strip().split("\n\n")[0]
    if description:
        lines += [" ".join(description.split()), ""]
    rows = [
        (_argument(action, formatter), _help(action, formatter))
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and action.help is not argparse.SUPPRESS
    ]
    if rows:
        lines += ["| Argument | Meaning |", "|---|---|"] + [f"| {arg} | {text} |" for arg, text in rows] + [""]
    for name, sub in _subcommands(parser):
        lines += _section(f"{prog} {name}", sub, min(level + 1, 4))
    return lines


def render() -> str:
    from capbench.cli import build_parser
    from capbench.testing import faulty_server
    from capbench.testing.mock_server import cli as mock_cli

    lines = [HEADER]
    capbench = build_parser()
    lines += _section("capbench", capbench, 2)
    lines += [
        "## Test servers",
        "",
        "Shipped for demos and tests; the README's openai examples use the mock server.",
        "",
    ]
    lines += _section("python -m capbench.testing.mock_server", mock_cli.build_parser(), 3)
    lines += _section("python -m capbench.testing.faulty_server", faulty_server.build_parser(), 3)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/cli.md from the commands' parsers.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is out of date; write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/cli.md is out of date: run .venv/bin/python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
