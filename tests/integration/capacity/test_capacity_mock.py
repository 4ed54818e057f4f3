"""``capbench capacity`` against the mock server's load model, whose capacity at an SLO is known in closed form.

With ``ttft_s = 5 ms``, ``ttft_per_stream_s = 10 ms``, ``itl_s = 1 ms`` and ``itl_per_stream_s = 2 ms``, a closed
loop of concurrency C has TTFT = 5 + 10·C ms and TPOT = 1 + 2·C ms in steady state, so the largest concurrency
meeting ``ttft_s ≤ 80 ms`` is 7, ``tpot_s ≤ 12 ms`` is 5, both ``ttft_s ≤ 50 ms`` and ``tpot_s ≤ 12 ms`` is 4
(every bound sits halfway between two concurrencies: 5 ms and 1 ms of margin for the client's own timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.cli import main
from capbench.testing.mock_server import MockServerProcess, MockSettings

pytestmark = pytest.mark.integration

LOAD_MODEL = MockSettings(
    ttft_s=0.005, ttft_per_stream_s=0.01, itl_s=0.001, itl_per_stream_s=0.002, output_tokens=8, record=False
)


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(LOAD_MODEL) as proc:
        yield proc


def capacity(server: MockServerProcess, out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    common = ["capacity", "--runner", "openai", "--base-url", server.url, "--power", "none", "--warmup", "0"]
    code = main([*common, "--out", str(out), "--quiet", *args])
    result = json.loads((out / "capacity.json").read_text()) if (out / "capacity.json").exists() else {}
    return code, result


@pytest.mark.parametrize(
    ("slo", "start", "analytic"),
    [("ttft_s=0.08", 1, 7), ("tpot_s=0.012", 4, 5), ("ttft_s=0.05,tpot_s=0.012", 4, 4)],
)
def test_the_concurrency_search_finds_the_analytic_capacity(
    server: MockServerProcess, tmp_path: Path, slo: str, start: int, analytic: int
) -> None:
    args = ["--slo", slo, "--attainment", "0.9", "--num-requests", "40", "--start", str(start)]
    code, result = capacity(server, tmp_path / "cap", *args)
    assert code == 0, result
    assert result["outcome"] == "found" and result["max_concurrency"] == analytic, result["probes"]
    assert result["bracket"] == {"passed": analytic, "failed": analytic + 1}
    assert result["probe_count"] <= 10 and result["probe_runs"] <= 10 + 2
    verdicts = {p["load"]: p["verdict"] for p in result["probes"]}
    assert all((v == "pass") == (load <= analytic) for load, v in verdicts.items())
    assert any(p["load"] > analytic for p in result["probes"])  # the failure that bounds it was measured
    at = result["at_capacity"]
    assert at["ttft_p50_s"] is not None and at["tokens_per_s_per_user"] is not None
    assert at["output_tokens_per_s_per_gpu"] is None  # an attached server's GPUs are unknown: never a guess
    run_dir = tmp_path / "cap" / result["at_capacity_run"]
    assert (run_dir / "summary.json").exists() and (run_dir / "requests.jsonl").exists()


def test_the_rate_search_finds_a_rate_that_passes_while_ten_percent_more_does_not(tmp_path: Path) -> None:
    # a faster load model (TTFT = 2 + 4·N ms, no decode cost): a capacity of about 200 requests/s, short probes
    fast = MockSettings(ttft_s=0.002, ttft_per_stream_s=0.004, output_tokens=2, record=False)
    settings = ["--slo", "ttft_s=0.03", "--num-requests", "150", "--arrival", "constant"]
    with MockServerProcess(fast) as server:
        code, result = capacity(
            server, tmp_path / "cap", "--search", "rate", "--start", "50", "--attainment", "0.9", *settings
        )
        assert code == 0 and result["outcome"] == "found", result
        rate = result["max_request_rate_per_s"]
        assert result["bracket"]["failed"] / rate <= 1.05 + 1e-9 and result["probe_count"] <= 10
        # 1.1x the capacity, as a plain run with the same settings: its attainment is under the target
        out = tmp_path / "above"
        args = ["run", "--runner", "openai", "--base-url", server.url, "--power", "none", "--warmup", "0", "--quiet"]
        assert main([*args, *settings, "--request-rate", f"{1.1 * rate:.6g}", "--out", str(out)]) == 0
    goodput = json.loads((out / "summary.json").read_text())["goodput"]
    assert goodput["fraction"] < 0.9, (rate, goodput)


def test_a_probe_that_cannot_pass_is_stopped_early(tmp_path: Path) -> None:
    """Past its capacity (TTFT 0.45 s at concurrency 8) the server would take about 22 s for 400 requests; the probe
    stops once more than 10 % of them missed (41 requests), long before that."""
    slow = MockSettings(ttft_s=0.05, ttft_per_stream_s=0.05, output_tokens=2, record=False)
    with MockServerProcess(slow) as server:
        search = ["--slo", "ttft_s=0.2", "--attainment", "0.9", "--start", "8", "--max-probes", "1"]
        code, result = capacity(server, tmp_path / "cap", *search, "--num-requests", "400")
    (probe,) = result["probes"]
    assert probe["verdict"] == "fail" and probe["stopped_early"] and probe["clear"]
    assert 41 <= probe["measured"] < 400 and probe["measured"] - probe["met"] > 40
    assert probe["wall_s"] < 12
    assert result["outcome"] == "unfinished" and code == 1  # one probe allowed: no capacity yet


def test_a_search_resumes_without_probing_again(server: MockServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "cap"
    args = ["--slo", "ttft_s=0.05", "--attainment", "0.9", "--num-requests", "20", "--start", "4"]
    code, first = capacity(server, out, *args)
    assert code == 0 and first["max_concurrency"] == 4
    runs = sorted(p.name for p in (out / "probes").iterdir())
    code, again = capacity(server, out, *args, "--resume")
    assert code == 0 and again["max_concurrency"] == 4 and again["probes"] == first["probes"]
    assert sorted(p.name for p in (out / "probes").iterdir()) == runs  # nothing ran again
    code, _ = capacity(server, out, *args)
    assert code == 2  # without --resume an existing search is never overwritten


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attainment", "0.9"], "needs latency targets"),
        (["--slo", "ttft_s=0.1", "--concurrency", "4"], "the capacity search sets the load itself"),
        (["--slo", "ttft_s=0.1", "--attainment", "1.5"], "--attainment must lie in"),
        (["--slo", "ttft_s=0.1", "--search", "concurrency", "--start", "2.5"], "starts at an integer"),
    ],
)
def test_bad_searches_are_refused_before_any_probe(
    server: MockServerProcess, tmp_path: Path, capsys: Any, args: list[str], message: str
) -> None:
    code, _ = capacity(server, tmp_path / "cap", *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "cap" / "probes").exists() or not any((tmp_path / "cap" / "probes").iterdir())


def test_a_rate_search_needs_a_server_runner(tmp_path: Path, capsys: Any) -> None:
    code = main(["capacity", "--search", "rate", "--slo", "ttft_s=1", "--out", str(tmp_path / "c")])
    assert code == 2 and "needs a server runner" in capsys.readouterr().err


def test_capacity_help_runs_without_heavy_imports() -> None:
    done = subprocess.run([sys.executable, "-m", "capbench", "capacity", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--attainment" in done.stdout and "--slo" in done.stdout
