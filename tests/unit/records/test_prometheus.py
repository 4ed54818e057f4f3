"""The Prometheus text-format parser: escapes, special values, timestamps, malformed lines, aggregation."""

from __future__ import annotations

import math

import pytest

from capbench.records.prometheus import (
    PromSample,
    histogram,
    metric_total,
    parse_prometheus,
    parse_prometheus_text,
    parse_sample_line,
)
from tests.support.paths import DATA

FIXTURES = DATA / "prometheus"
REAL = ("vllm-0.32-cpu.prom", "vllm-0.32-cpu-after.prom")


def test_plain_and_labeled_samples() -> None:
    text = """\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{code="400",method="post"}    3   1395066363000

metric_without_labels 12.47
vllm:num_requests_running{engine="0",model_name="m"} 2.0
"""
    scrape = parse_prometheus(text)
    assert scrape.malformed == 0
    assert scrape.types == {"http_requests_total": "counter"}
    first, second, plain, vllm = scrape.samples
    assert first == PromSample("http_requests_total", (("code", "200"), ("method", "post")), 1027.0, 1395066363000)
    assert second.labels == (("code", "400"), ("method", "post"))  # sorted, whatever the text order
    assert second.timestamp_ms == 1395066363000
    assert plain == PromSample("metric_without_labels", (), 12.47, None)
    assert vllm.name == "vllm:num_requests_running" and vllm.label("engine") == "0" and vllm.label("x") is None
    assert vllm.label_dict == {"engine": "0", "model_name": "m"}
    assert parse_prometheus_text(text) == list(scrape.samples)


def test_label_value_escapes() -> None:
    line = r'msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458e+09'
    sample = parse_sample_line(line)
    assert sample.label("path") == "C:\\DIR\\FILE.TXT"
    assert sample.label("error") == 'Cannot find file:\n"FILE.TXT"'
    assert sample.value == 1.458e9


def test_label_values_may_hold_braces_commas_spaces_and_equals() -> None:
    sample = parse_sample_line('m{a="x}, y=\\"z\\"", b = "", c="=",} 1')
    assert sample.label_dict == {"a": 'x}, y="z"', "b": "", "c": "="}


def test_special_values_and_negative_timestamp() -> None:
    samples = parse_prometheus_text("a NaN\nb +Inf\nc -Inf\nd -0.5e-3 -100\ne 1e3\n")
    assert math.isnan(samples[0].value)
    assert samples[1].value == math.inf and samples[2].value == -math.inf
    assert samples[3].value == -0.0005 and samples[3].timestamp_ms == -100
    assert samples[4].value == 1000.0


@pytest.mark.parametrize(
    "line",
    [
        "9metric 1",  # a name cannot start with a digit
        "metric",  # no value
        "metric one",  # value not a number
        "metric 1_000",  # Python would take it, the format does not
        "metric 1 2.5",  # timestamp not an integer
        "metric 1 2 3",  # too many fields
        'metric{a="1" 1',  # unterminated label set
        'metric{a="1} 1',  # unterminated label value
        "metric{a=1} 1",  # unquoted label value
        'metric{a="1",a="2"} 1',  # repeated label
        'metric{1a="x"} 1',  # bad label name
        'metric{a="1"}1',  # no space before the value
        'metric{a="1" b="2"} 1',  # missing comma
    ],
)
def test_malformed_lines_are_skipped_and_counted(line: str) -> None:
    scrape = parse_prometheus(f"good 1\n{line}\nalso_good 2\n")
    assert [s.name for s in scrape.samples] == ["good", "also_good"]
    assert scrape.malformed == 1
    assert scrape.malformed_lines[0][0] == 2  # line number, then the reason


def test_comments_blank_lines_and_crlf() -> None:
    text = "# just a comment\r\n\r\n#TYPE odd\r\n# TYPE g gauge\r\ng 1\r\n# EOF\r\n"
    scrape = parse_prometheus(text)
    assert scrape.malformed == 0 and scrape.types == {"g": "gauge"}
    assert [(s.name, s.value) for s in scrape.samples] == [("g", 1.0)]


def test_empty_and_garbage_text_never_raise() -> None:
    assert parse_prometheus("").samples == ()
    garbage = parse_prometheus("<html>\n<body>502 Bad Gateway</body>\n</html>\n")
    assert garbage.samples == () and garbage.malformed == 3


def test_metric_total_sums_label_sets_and_filters() -> None:
    samples = parse_prometheus_text(
        'req{reason="stop",engine="0"} 3\nreq{reason="length",engine="0"} 4\nreq{reason="stop",engine="1"} 5\n'
        "other 100\nreq_nan NaN\n"
    )
    assert metric_total(samples, "req") == 12.0
    assert metric_total(samples, "req", {"reason": "stop"}) == 8.0
    assert metric_total(samples, "req", {"reason": "abort"}) is None
    assert metric_total(samples, "missing") is None  # not exposed: None, never 0
    assert metric_total(samples, "req_nan") is None


HISTOGRAM = """\
# TYPE lat histogram
lat_bucket{engine="0",le="0.1"} 1
lat_bucket{engine="0",le="0.5"} 3
lat_bucket{engine="0",le="+Inf"} 4
lat_sum{engine="0"} 1.5
lat_count{engine="0"} 4
lat_bucket{engine="1",le="0.1"} 2
lat_bucket{engine="1",le="0.5"} 2
lat_bucket{engine="1",le="+Inf"} 3
lat_sum{engine="1"} 2.0
lat_count{engine="1"} 3
"""


def test_histogram_sums_buckets_over_label_sets() -> None:
    h = histogram(parse_prometheus_text(HISTOGRAM), "lat")
    assert h is not None
    assert h.buckets == ((0.1, 3.0), (0.5, 5.0), (math.inf, 7.0))
    assert h.sum == 3.5 and h.count == 7.0
    only_one = histogram(parse_prometheus_text(HISTOGRAM), "lat", {"engine": "1"})
    assert only_one is not None and only_one.buckets == ((0.1, 2.0), (0.5, 2.0), (math.inf, 3.0))
    assert histogram(parse_prometheus_text(HISTOGRAM), "nope") is None


def test_histogram_with_different_bounds_per_series_stays_cumulative() -> None:
    text = (
        'h_bucket{a="x",le="1"} 1\nh_bucket{a="x",le="+Inf"} 2\nh_bucket{a="y",le="2"} 5\nh_bucket{a="y",le="+Inf"} 5\n'
    )
    h = histogram(parse_prometheus_text(text), "h")
    assert h is not None
    # At le=2 series x contributes its count at le=1 (1): a lower bound, never more than the truth.
    assert h.buckets == ((1.0, 1.0), (2.0, 6.0), (math.inf, 7.0))
    assert h.sum is None and h.count is None


def test_scrape_helpers_match_module_functions() -> None:
    scrape = parse_prometheus(HISTOGRAM + "g 2\n")
    assert scrape.has("g") and not scrape.has("lat") and scrape.has_histogram("lat")
    assert scrape.total("g") == 2.0 and scrape.total("lat_count", {"engine": "0"}) == 4.0
    assert scrape.histogram("lat") == histogram(scrape.samples, "lat")
    assert len(scrape.series("lat_bucket", {"engine": "0"})) == 3


@pytest.mark.parametrize("name", REAL)
def test_real_vllm_scrape_parses_cleanly(name: str) -> None:
    scrape = parse_prometheus((FIXTURES / name).read_text())
    assert scrape.malformed == 0 and scrape.malformed_lines == ()
    assert len(scrape.samples) > 300
    assert scrape.types["vllm:time_to_first_token_seconds"] == "histogram"
    assert scrape.types["vllm:kv_cache_usage_perc"] == "gauge"
    ttft = scrape.histogram("vllm:time_to_first_token_seconds")
    assert ttft is not None and ttft.count is not None and ttft.count > 0
    assert ttft.buckets[-1] == (math.inf, ttft.count)  # the +Inf bucket holds every observation
    counts = [c for _, c in ttft.buckets]
    assert counts == sorted(counts)
    reasons = {s.label("finished_reason") for s in scrape.series("vllm:request_success_total")}
    assert {"stop", "length", "abort"} <= reasons
