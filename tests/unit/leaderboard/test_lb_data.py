"""Loading export CSVs: typed values, NaN (never 0) for empty cells, one warning per skipped row or file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capbench.leaderboard.data import (
    BOOL_COLUMNS,
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    TEXT_COLUMNS,
    LoadWarning,
    column_kind,
    empty_frame,
    load_results,
)
from capbench.summary.columns import NAMES as COLUMNS

HEADER = (
    "run_id,model,summary_schema_version,spec_version,engine,accuracy,usd_per_1m_output_tokens,client_bound,my_note"
)
GOOD = ("r1,m-a,1,1.0,hf,0.5,2.25,True,hello", "r3,m-c,1,1.2,vllm,,0.125,,")


def write(tmp_path: Path, name: str, *lines: str) -> str:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def test_good_file_loads_typed(tmp_path: Path) -> None:
    path = write(tmp_path, "good.csv", HEADER, *GOOD)
    results = load_results([path])
    frame = results.frame
    assert results.warnings == ()
    assert results.files == (path,)
    assert list(frame["run_id"]) == ["r1", "r3"]
    assert list(frame["model"]) == ["m-a", "m-c"]
    assert list(frame["engine"]) == ["hf", "vllm"]
    assert frame["accuracy"].dtype == np.float64
    assert frame.loc[0, "accuracy"] == 0.5
    assert math.isnan(frame.loc[1, "accuracy"])  # empty cell: NaN, never 0
    assert frame["usd_per_1m_output_tokens"].tolist() == [2.25, 0.125]
    assert frame["summary_schema_version"].tolist() == [1.0, 1.0]
    assert frame["spec_version"].tolist() == ["1.0", "1.2"]  # text, as written
    assert frame["client_bound"].dtype == "boolean"
    assert frame["client_bound"].tolist()[0] is True
    assert pd.isna(frame.loc[1, "client_bound"])
    assert frame["my_note"].tolist() == ["hello", None]  # an unknown column is kept as text
    assert frame["source_file"].tolist() == [path, path]
    assert frame["source_row"].tolist() == [1, 2]
    assert frame["label"].tolist() == ["m-a · hf · — · —", "m-c · vllm · — · —"]  # derived columns added
    # every known column is present, missing everywhere when the file lacks it
    assert set(KNOWN_COLUMNS) <= set(frame.columns)
    assert frame["energy_per_output_token_j"].isna().all()
    assert frame["energy_per_output_token_j"].dtype == np.float64
    assert frame["decode_flops"].isna().all()  # a new column the file lacks


def test_numbers_are_float_and_missing_is_nan(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "n.csv",
        "run_id,model,summary_schema_version,spec_version,concurrency,num_gpus,ttft_p50_s,decode_bytes",
        "a,m,1,1.0,4,0,1e-3,",
        "b,m,1,1.0,,8, 0.5 ,12345678901234",
    )
    frame = load_results([path]).frame
    for column in ("concurrency", "num_gpus", "ttft_p50_s", "decode_bytes"):
        assert frame[column].dtype == np.float64, column
    assert frame.loc[0, "concurrency"] == 4.0
    assert math.isnan(frame.loc[1, "concurrency"])
    assert frame.loc[0, "num_gpus"] == 0.0  # a measured 0 stays 0
    assert frame.loc[0, "ttft_p50_s"] == 0.001
    assert frame.loc[1, "ttft_p50_s"] == 0.5
    assert math.isnan(frame.loc[0, "decode_bytes"])
    assert frame.loc[1, "decode_bytes"] == 12345678901234.0


BAD_ROWS: list[tuple[str, str, str]] = [
    # (case, the bad row, a fragment the warning must contain)
    ("too few fields", "r2,m-b,1", "3 fields, the header has 9"),
    ("too many fields", "r2,m-b,1,1.0,hf,0.5,1,True,x,extra", "10 fields"),
    ("empty run_id", ",m-b,1,1.0,hf,0.5,1,True,x", "empty run_id"),
    ("blank run_id", "  ,m-b,1,1.0,hf,0.5,1,True,x", "empty run_id"),
    ("schema version 7", "r2,m-b,7,1.0,hf,0.5,1,True,x", "summary schema version '7' is not supported"),
    ("schema version text", "r2,m-b,one,1.0,hf,0.5,1,True,x", "summary schema version 'one'"),
    ("schema version fraction", "r2,m-b,1.5,1.0,hf,0.5,1,True,x", "summary schema version '1.5'"),
    ("schema version empty", "r2,m-b,,1.0,hf,0.5,1,True,x", "no summary schema version"),
    ("spec major 2", "r2,m-b,1,2.0,hf,0.5,1,True,x", "spec version '2.0' is not supported"),
    ("spec major 0", "r2,m-b,1,0.9,hf,0.5,1,True,x", "spec version '0.9'"),
    ("spec not a version", "r2,m-b,1,v1,hf,0.5,1,True,x", "spec version 'v1'"),
    ("spec empty", "r2,m-b,1,,hf,0.5,1,True,x", "no spec version"),
    ("inf", "r2,m-b,1,1.0,hf,inf,1,True,x", "column accuracy: 'inf' is not a finite number"),
    ("nan", "r2,m-b,1,1.0,hf,nan,1,True,x", "column accuracy: 'nan' is not a finite number"),
    ("text in number", "r2,m-b,1,1.0,hf,0.5,abc,True,x", "column usd_per_1m_output_tokens: 'abc'"),
    ("bad bool", "r2,m-b,1,1.0,hf,0.5,1,yes,x", "column client_bound: 'yes' is not True, False or empty"),
    ("duplicate run_id", "r1,m-b,1,1.0,hf,0.5,1,True,x", "already loaded from"),
]


@pytest.mark.parametrize(("case", "bad", "fragment"), BAD_ROWS, ids=[case for case, _, _ in BAD_ROWS])
def test_bad_row_skipped_with_one_warning(tmp_path: Path, case: str, bad: str, fragment: str) -> None:
    path = write(tmp_path, "mixed.csv", HEADER, GOOD[0], bad, GOOD[1])
    results = load_results([path])
    assert len(results.warnings) == 1, [str(w) for w in results.warnings]
    warning = results.warnings[0]
    assert warning.file == path
    assert warning.row == 2
    assert str(warning).startswith(f"{path}, row 2: ")
    assert fragment in warning.message
    assert list(results.frame["run_id"]) == ["r1", "r3"]  # the other rows survive
    assert results.frame["source_row"].tolist() == [1, 3]


def test_every_bad_cell_of_a_row_is_named_in_one_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", HEADER, "r9,m,1,1.0,hf,inf,abc,maybe,x")
    (warning,) = load_results([path]).warnings
    assert "accuracy" in warning.message and "usd_per_1m_output_tokens" in warning.message
    assert "client_bound" in warning.message


def test_bool_cells_any_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "b.csv",
        "run_id,model,summary_schema_version,spec_version,fixed_length_exact",
        "a,m,1,1,false",
        "b,m,1,1,TRUE",
    )
    results = load_results([path])
    assert results.warnings == ()
    assert results.frame["fixed_length_exact"].tolist() == [False, True]


def test_missing_file_warns_and_gives_empty_frame(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.csv")
    results = load_results([path])
    assert len(results.frame) == 0
    assert list(results.frame.columns) == list(empty_frame().columns)
    assert results.warnings == (LoadWarning(path, None, "file not found; skipped"),)
    assert str(results.warnings[0]) == f"{path}: file not found; skipped"


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    results = load_results([path])  # a Path is accepted too; the warning names it as given
    assert len(results.frame) == 0
    assert len(results.warnings) == 1
    assert results.warnings[0].file == str(path) and results.warnings[0].row is None
    assert "empty" in results.warnings[0].message


def test_header_only_file(tmp_path: Path) -> None:
    path = write(tmp_path, "header.csv", HEADER)
    results = load_results([path])
    assert results.warnings == ()
    assert len(results.frame) == 0
    assert "my_note" in results.frame.columns


def test_no_files_gives_empty_frame() -> None:
    results = load_results([])
    assert results.warnings == () and results.files == ()
    pd.testing.assert_frame_equal(results.frame, empty_frame())


def test_directory_and_non_utf8_and_missing_required_column(tmp_path: Path) -> None:
    directory = tmp_path / "adir"
    directory.mkdir()
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + b"\nr1,caf\xe9,1,1.0,hf,,,,\n")
    lacking = write(tmp_path, "lacking.csv", "run_id,model,spec_version", "r1,m,1.0")
    good = write(tmp_path, "good.csv", HEADER, *GOOD)
    results = load_results([directory, latin, lacking, good])
    assert [(w.file, w.row) for w in results.warnings] == [
        (str(directory), None),
        (str(latin), None),
        (lacking, None),
    ]
    assert "UTF-8" in results.warnings[1].message
    assert "summary_schema_version" in results.warnings[2].message
    assert list(results.frame["run_id"]) == ["r1", "r3"]  # the good file still loads


def test_repeated_header_column_skips_file(tmp_path: Path) -> None:
    path = write(tmp_path, "rep.csv", "run_id,model,summary_schema_version,spec_version,model", "r1,a,1,1.0,b")
    results = load_results([path])
    assert len(results.frame) == 0
    assert len(results.warnings) == 1 and "model" in results.warnings[0].message


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(("\ufeff" + HEADER + "\r\n" + GOOD[0] + "\r\n").encode("utf-8"))
    results = load_results([path])
    assert results.warnings == ()
    assert list(results.frame["run_id"]) == ["r1"]
    assert results.frame.loc[0, "my_note"] == "hello"


def test_quoted_cell_with_comma_and_newline(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", HEADER, 'r1,"m, ""quoted""\nsecond line",1,1.0,hf,,,,', GOOD[1])
    results = load_results([path])
    assert results.warnings == ()
    assert results.frame.loc[0, "model"] == 'm, "quoted"\nsecond line'
    assert results.frame["source_row"].tolist() == [1, 2]  # rows count records, not lines


def test_duplicate_run_id_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.csv", HEADER, *GOOD)
    second = write(tmp_path, "b.csv", HEADER, "r4,m-d,1,1.0,hf,0.1,1,,", "r3,m-other,1,1.0,hf,0.9,1,,")
    results = load_results([first, second])
    assert len(results.warnings) == 1
    warning = results.warnings[0]
    assert (warning.file, warning.row) == (second, 2)
    assert f"already loaded from {first}, row 2" in warning.message
    assert list(results.frame["run_id"]) == ["r1", "r3", "r4"]
    assert results.frame.loc[1, "model"] == "m-c"  # the first r3 is kept


def test_columns_unioned_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.csv", "run_id,model,summary_schema_version,spec_version,extra_a", "r1,m,1,1.0,x")
    second = write(
        tmp_path, "b.csv", "spec_version,extra_b,summary_schema_version,model,run_id,accuracy", "1.0,y,1,m,r2,0.75"
    )
    results = load_results([first, second])
    frame = results.frame
    assert results.warnings == ()
    assert frame["extra_a"].tolist() == ["x", None]
    assert frame["extra_b"].tolist() == [None, "y"]
    assert math.isnan(frame.loc[0, "accuracy"]) and frame.loc[1, "accuracy"] == 0.75
    extras = [column for column in frame.columns if column in ("extra_a", "extra_b")]
    assert extras == ["extra_a", "extra_b"]  # first-seen order


def test_reserved_column_names_are_ignored_with_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "run_id,model,summary_schema_version,spec_version,label", "r1,m,1,1.0,evil")
    results = load_results([path])
    assert len(results.warnings) == 1 and "label" in results.warnings[0].message
    assert results.frame.loc[0, "label"] != "evil"  # derived, not read
    assert list(results.frame["run_id"]) == ["r1"]


def test_blank_line_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "blank.csv", HEADER, GOOD[0], "", GOOD[1])
    results = load_results([path])
    assert results.warnings == ()
    assert results.frame["source_row"].tolist() == [1, 3]


def test_empty_frame_types() -> None:
    frame = empty_frame()
    assert len(frame) == 0
    assert list(frame.columns[: len(KNOWN_COLUMNS)]) == list(KNOWN_COLUMNS)
    for column in ("source_file", "source_row", "hardware", "precision", "task", "load", "label"):
        assert column in frame.columns
    assert frame["accuracy"].dtype == np.float64
    assert frame["client_bound"].dtype == "boolean"
    assert frame["model"].dtype == object


def test_column_kinds() -> None:
    assert set(REQUIRED_COLUMNS) <= set(COLUMNS)
    assert column_kind("accuracy") == "number"
    assert column_kind("summary_schema_version") == "number"
    assert column_kind("spec_version") == "text"
    assert column_kind("energy_source") == "text"
    assert column_kind("decode_experts_active_per_layer") == "text"
    assert column_kind("prefill_time_s") == "number"
    assert column_kind("client_bound") == "bool"
    assert column_kind("something_new") == "text"
    assert sorted(BOOL_COLUMNS) == [
        "capacity_point",
        "client_bound",
        "engine_lock_matches",
        "fixed_length_exact",
        "lock_matches",
    ]
    assert not BOOL_COLUMNS & TEXT_COLUMNS
    # every text column of the export is a name, version, dtype, source or JSON list, never a measured quantity
    numeric_suffixes = ("_s", "_j", "_w", "_per_s", "_usd", "_fraction", "_bytes", "_flops")
    assert not [column for column in TEXT_COLUMNS if column.endswith(numeric_suffixes)]
