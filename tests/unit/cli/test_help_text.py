"""``--help`` is for people: no reST markup, one default per option, the same flag name for one concept."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from capbench.cli import build_parser
from capbench.cli.text import plain, with_default

REST = re.compile(r"``|:[a-z]+:`")


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the CLI, by its command path."""
    pending = [("capbench", build_parser())]
    while pending:
        name, parser = pending.pop()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend((f"{name} {sub}", child) for sub, child in action.choices.items())


def test_every_command_is_covered() -> None:
    names = {name for name, _ in parsers()}
    assert {"capbench run", "capbench score", "capbench profiles show", "capbench sweep"} <= names


@pytest.mark.parametrize("name", sorted(name for name, _ in parsers()))
def test_help_is_plain_text_with_one_default_per_option(name: str) -> None:
    parser = dict(parsers())[name]
    text = parser.format_help()
    assert not REST.search(text), f"{name} --help shows reST markup: {REST.search(text)}"
    assert "(default: None)" not in text
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.help:
            shown = formatter._expand_help(action)
            assert shown.count("default") <= 1, f"{name} {action.option_strings}: {shown}"


def test_one_flag_name_for_hardware_overrides() -> None:
    commands = dict(parsers())
    for name in ("capbench run", "capbench score", "capbench profiles show"):
        flags = {flag for action in commands[name]._actions for flag in action.option_strings}
        assert {"--hardware-override", "--set"} <= flags, name


def test_run_accepts_the_alias() -> None:
    args = build_parser().parse_args(
        ["run", "--set", "tdp_w=300", "--hardware-override", "memory_bandwidth_bytes_per_s=1e12"]
    )
    assert args.hardware_overrides == ["tdp_w=300", "memory_bandwidth_bytes_per_s=1e12"]


def test_plain_and_with_default() -> None:
    assert plain("Every :class:`~capbench.config.RunSpec` field: ``num_requests`` or `x`") == (
        "Every RunSpec field: num_requests or x"
    )
    assert plain(":func:`run_load`") == "run_load"
    assert with_default("measured requests; default 16", None) == "measured requests; default 16"
    assert with_default("sampling temperature", 0.0) == "sampling temperature (default: 0.0)"
    assert with_default("backend", "hf") == "backend (default: hf)"
    assert with_default("a directory; empty = the demo", None) == "a directory; empty = the demo"
