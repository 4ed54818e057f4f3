"""The command line: every subcommand has --help, and building the parser imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from capbench.cli import SUBCOMMANDS, build_parser, main


@pytest.mark.parametrize("command", [name.replace("_", "-") for name in SUBCOMMANDS])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: capbench" in capsys.readouterr().out


def test_top_level_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("run", "score", "export", "model-info", "profiles"):
        assert name in out


def test_parser_imports_no_heavy_module() -> None:
    code = (
        "import sys; from capbench.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers', 'gradio', 'pandas', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_run_flags_mirror_the_config_keys() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "--num-requests", "3", "--concurrency", "2", "--no-probe"])
    assert (args.num_requests, args.concurrency, args.probe) == ("3", "2", False)
    assert args.config is None


def test_bad_run_flag_value_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--concurrency", "zero"]) == 2
    err = capsys.readouterr().err
    assert "'concurrency'" in err and "Traceback" not in err


def test_a_swept_run_is_a_sweep_file_with_one_axis(tmp_path: Path) -> None:
    """``capbench run --concurrency 1,16,64`` stands for a sweep: the run's settings as base, one axis; the sweep
    engine validates and expands it like any sweep file."""
    import yaml

    from capbench.cli.run import sweep_file, swept_values
    from capbench.errors import ConfigError
    from capbench.sweep.spec import expand, load_sweep

    overrides = {"concurrency": "1,16,64", "seed": None, "task": "none", "out": "x"}
    assert swept_values(overrides) == ("concurrency", ["1", "16", "64"])
    assert swept_values({"concurrency": "8"}) is None
    with pytest.raises(ConfigError, match="not both"):
        swept_values({"concurrency": "1,2", "request_rate": "3,4"})
    with pytest.raises(ConfigError, match="twice"):
        swept_values({"request_rate": "5,5"})
    data = sweep_file(None, overrides, "concurrency", ["1", "16", "64"])
    assert data == {"name": "run-concurrency", "base": {"task": "none"}, "axes": {"concurrency": ["1", "16", "64"]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    points = expand(load_sweep(path), base_dir=tmp_path)
    assert [p.spec.concurrency for p in points] == [1, 16, 64]
    assert len({p.id for p in points}) == 3


def test_slo_and_overrides_parse_comma_lists() -> None:
    from capbench.cli.run import parse_key_values
    from capbench.errors import ConfigError

    assert parse_key_values(["ttft_s=0.5,tpot_s=0.05", "itl_s=0.1"], "--slo") == {
        "ttft_s": "0.5",
        "tpot_s": "0.05",
        "itl_s": "0.1",
    }
    assert parse_key_values(None, "--slo") is None
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_key_values(["ttft_s"], "--slo")
