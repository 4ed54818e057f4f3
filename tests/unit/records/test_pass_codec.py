"""Schema 3's compact pass records: exact round trips, what the writer refuses, the form on disk and both forms
read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.errors import CapbenchError
from capbench.records import RunWriter, read_run
from capbench.records.pass_codec import compact_pass, expand_pass, is_compact_pass, routing_measured
from capbench.records.schema import PASSES_FILE, SCHEMA_VERSION, pass_record

COUNT = st.integers(0, 2**40)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    layers, experts = draw(st.integers(0, 5)), draw(st.integers(1, 6))
    measured = draw(st.booleans())
    tokens = [draw(st.lists(COUNT, min_size=experts, max_size=experts)) for _ in range(layers)]
    return dict(
        pass_record(
            t_start_ns=draw(COUNT),
            t_end_ns=draw(COUNT),
            reqs=draw(st.lists(st.lists(COUNT, min_size=2, max_size=2), max_size=70)),
            req_ids=["r0000"],
            sampled=draw(st.integers(0, 3)),
            experts_active=[sum(1 for n in row if n) for row in tokens] if measured else None,
            expert_tokens=tokens if measured and draw(st.booleans()) else None,
            warmup=draw(st.booleans()),
        )
    )


@settings(max_examples=300, deadline=None)
@given(records())
def test_a_record_comes_back_exactly(record: dict[str, Any]) -> None:
    compact = compact_pass(record)
    assert is_compact_pass(compact) and not is_compact_pass(record)
    assert not {"reqs", "experts_active", "expert_tokens"} & set(compact)
    assert expand_pass(json.loads(json.dumps(compact))) == record
    assert list(expand_pass(compact)) == list(record)  # fields in their order
    assert routing_measured(compact) == routing_measured(record) == (record["experts_active"] is not None)
    assert compact_pass(compact) == compact and expand_pass(record) == record


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reqs": [[1, 2, 3]]}, "reqs cannot be written: it must be a list of \\[n, c\\] pairs"),
        ({"reqs": [[1, 2], [3]]}, "reqs cannot be written"),
        ({"reqs": [[1.5, 2]]}, "reqs cannot be written: it must hold integers"),
        ({"reqs": [[1, -2]]}, "reqs cannot be written: a varint must be in"),
        ({"experts_active": [[1]]}, "experts_active cannot be written: it must be a flat list"),
        ({"experts_active": None, "expert_tokens": [[1]]}, "expert_tokens cannot be written: it must be one list"),
        ({"experts_active": [1], "expert_tokens": [[1], [1]]}, "expert_tokens cannot be written: .*as many as"),
    ],
)
def test_what_breaks_the_contract_is_refused_before_it_is_written(fields: dict[str, Any], message: str) -> None:
    record = {"step": 7, "reqs": [[1, 2]], "sampled": 1, "experts_active": [1], "expert_tokens": [[1]]} | fields
    with pytest.raises(CapbenchError, match=f"pass record step 7 \\(dp rank 0\\): {message}"):
        compact_pass(record)


def test_the_writer_stores_the_compact_form_and_read_run_restores_the_lists(tmp_path: Path) -> None:
    passes = [
        {"t_start_ns": 1, "t_end_ns": 9, "reqs": [[5, 0], [1, 300]], "sampled": 2, "experts_active": [2, 1]}
        | {"expert_tokens": [[4, 2, 0], [0, 6, 0]]},
        {"t_start_ns": 10, "t_end_ns": 20, "reqs": [[1, 6]], "sampled": 1, "experts_active": None}
        | {"expert_tokens": None},
    ]
    with RunWriter(tmp_path / "run", {"schema_version": SCHEMA_VERSION, "run_id": "run", "spec": {}}) as writer:
        for record in passes:
            writer.append_pass(record)
    on_disk = [json.loads(line) for line in (tmp_path / "run" / PASSES_FILE).read_text().splitlines()]
    assert SCHEMA_VERSION == 3
    assert on_disk[0]["reqs_b64"] == "BQABrAI=" and on_disk[1]["experts_active_b64"] is None
    assert list(read_run(tmp_path / "run").iter_passes()) == passes


def test_a_string_that_does_not_decode_is_named_with_its_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunWriter(run, {"schema_version": SCHEMA_VERSION, "run_id": "run", "spec": {}}) as writer:
        writer.append_pass({"t_start_ns": 1, "t_end_ns": 2, "reqs": [[1, 2]], "sampled": 1, "experts_active": None})
    with (run / PASSES_FILE).open("a") as f:
        f.write(json.dumps({"t_start_ns": 3, "t_end_ns": 4, "reqs_b64": "AQID", "sampled": 1}) + "\n")
    with pytest.raises(CapbenchError, match=r"passes.jsonl, line 2: .*reqs_b64 holds 3 integers, not \[n, c\] pairs"):
        list(read_run(run).iter_passes())
