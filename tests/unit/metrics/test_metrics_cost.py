"""Cost per token with rental and amortized prices, the TDP fallback, and missing prices → None."""

from __future__ import annotations

import pytest

from capbench.errors import CapbenchError
from capbench.metrics.cost import CostInputs, cost_summary


def test_rental_hand_computed() -> None:
    # 2 GPUs at 2.50 USD/GPU-h for 1800 s (0.5 h): 2·2.5·0.5 = 2.5 USD. Energy 0.36 kWh at 0.10 = 0.036 USD.
    # Total 2.536 USD; 100,000 output tokens → 25.36 USD per 1M; 100 requests → 0.02536 USD each.
    inputs = CostInputs(
        num_gpus=2,
        pricing="rental",
        usd_per_gpu_hour=2.5,
        usd_per_kwh=0.10,
        price_source="user",
        gpu_purchase_usd=30_000,
        host_purchase_usd=20_000,
    )
    out = cost_summary(inputs, wall_s=1800, output_tokens=100_000, completed_requests=100, energy_kwh=0.36)
    assert out["usd_per_gpu_hour"] == 2.5 and out["usd_per_gpu_hour_source"] == "rental"
    assert out["gpu_usd"] == pytest.approx(2.5)
    assert out["energy_usd"] == pytest.approx(0.036) and out["energy_cost_source"] == "measured"
    assert out["total_usd"] == pytest.approx(2.536)
    assert out["usd_per_1m_output_tokens"] == pytest.approx(25.36)
    assert out["usd_per_request"] == pytest.approx(0.02536)
    assert out["deployment_capital_usd"] == 2 * 30_000 + 20_000
    assert out["inputs"]["usd_per_kwh"] == 0.10 and out["inputs"]["price_source"] == "user"


def test_amortized_hand_computed() -> None:
    # 8 GPUs at 30,000 USD + a 40,000 USD host (5,000 per GPU), 4 years at 50% utilization:
    # (30,000 + 5,000) / (4 · 8766 · 0.5) = 35,000 / 17,532 USD per GPU-hour.
    inputs = CostInputs(
        num_gpus=8,
        pricing="amortized",
        gpu_purchase_usd=30_000,
        host_purchase_usd=40_000,
        lifetime_years=4,
        utilization=0.5,
        usd_per_kwh=0.0,
    )
    out = cost_summary(inputs, wall_s=3600, output_tokens=1_000_000, completed_requests=10, energy_kwh=1.0)
    per_hour = 35_000 / 17_532
    assert out["usd_per_gpu_hour"] == pytest.approx(per_hour, rel=1e-15)
    assert out["usd_per_gpu_hour_source"] == "amortized"
    assert out["total_usd"] == pytest.approx(8 * per_hour * 1.0)
    assert out["usd_per_1m_output_tokens"] == pytest.approx(8 * per_hour)
    assert out["deployment_capital_usd"] == 8 * 30_000 + 40_000


def test_missing_price_is_none_with_reason() -> None:
    out = cost_summary(
        CostInputs(num_gpus=1, pricing="rental", usd_per_kwh=0.1),
        wall_s=10,
        output_tokens=5,
        completed_requests=1,
        energy_kwh=0.001,
    )
    for key in (
        "usd_per_gpu_hour",
        "gpu_usd",
        "total_usd",
        "usd_per_1m_output_tokens",
        "usd_per_request",
        "deployment_capital_usd",
    ):
        assert out[key] is None, key
    assert "usd_per_gpu_hour is not given" in out["null_reasons"]["usd_per_gpu_hour"]
    assert out["energy_usd"] == pytest.approx(0.0001)
    none = cost_summary(None, wall_s=10, output_tokens=5, completed_requests=1, energy_kwh=None)
    assert none["total_usd"] is None and none["null_reasons"]["all"]


def test_tdp_fallback_is_labeled() -> None:
    # No measured energy: 4 GPUs · 700 W · 3600 s / 3.6e6 = 2.8 kWh at 0.2 USD = 0.56 USD.
    inputs = CostInputs(num_gpus=4, pricing="rental", usd_per_gpu_hour=1.0, usd_per_kwh=0.2, gpu_tdp_w=700)
    out = cost_summary(inputs, wall_s=3600, output_tokens=1000, completed_requests=1, energy_kwh=None)
    assert out["energy_cost_source"] == "tdp_estimate"
    assert out["energy_kwh"] == pytest.approx(2.8) and out["energy_usd"] == pytest.approx(0.56)
    assert out["total_usd"] == pytest.approx(4.0 + 0.56)


def test_power_included_in_the_price_needs_no_energy_measurement() -> None:
    # 2 GPUs · 1.5 USD/h · 1800 s = 1.5 USD for 500,000 tokens = 3.0 USD per 1M; nothing measured the energy.
    inputs = CostInputs(num_gpus=2, pricing="rental", usd_per_gpu_hour=1.5, usd_per_kwh=0.0)
    out = cost_summary(inputs, wall_s=1800, output_tokens=500_000, completed_requests=4, energy_kwh=None)
    assert out["energy_kwh"] is None  # still unmeasured
    assert out["energy_usd"] == 0.0 and out["energy_cost_source"] == "included_in_gpu_hour_price"
    assert out["total_usd"] == pytest.approx(1.5) and out["usd_per_1m_output_tokens"] == pytest.approx(3.0)
    priced = CostInputs(num_gpus=2, pricing="rental", usd_per_gpu_hour=1.5, usd_per_kwh=0.1)
    out = cost_summary(priced, wall_s=1800, output_tokens=500_000, completed_requests=4, energy_kwh=None)
    assert out["energy_usd"] is None and out["total_usd"] is None  # a real electricity price needs the kWh
    amortized = CostInputs(
        num_gpus=1,
        pricing="amortized",
        gpu_purchase_usd=8766.0,
        host_purchase_usd=0.0,
        lifetime_years=1,
        utilization=1.0,
        usd_per_kwh=0.0,
    )
    out = cost_summary(amortized, wall_s=3600, output_tokens=1_000_000, completed_requests=1, energy_kwh=None)
    assert out["energy_cost_source"] == "zero_energy_price" and out["total_usd"] == pytest.approx(1.0)


def test_no_energy_price_leaves_total_unknown() -> None:
    inputs = CostInputs(num_gpus=1, pricing="rental", usd_per_gpu_hour=1.0)
    out = cost_summary(inputs, wall_s=3600, output_tokens=1000, completed_requests=1, energy_kwh=0.5)
    assert out["gpu_usd"] == 1.0 and out["energy_usd"] is None and out["total_usd"] is None
    assert "pass 0" in out["null_reasons"]["energy_usd"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"usd_per_gpu_hour": -1.0},
        {"utilization": 0.0},
        {"utilization": 1.5},
        {"lifetime_years": 0.0},
        {"pricing": "lease"},
        {"num_gpus": 0},
    ],
)
def test_bad_inputs_are_errors(kwargs: dict) -> None:
    with pytest.raises(CapbenchError):
        CostInputs(**{"num_gpus": 1, "pricing": "rental", **kwargs})
