"""The Gradio CAP leaderboard: layout and event wiring only.

Every number and string shown comes from the pure modules next to this one: ``data`` (CSV loading and
validation), ``table`` (labels, filters, sorting, display formatting, CSV download), ``pareto`` (the
cost-accuracy front), ``radar`` (normalization), ``details`` (escaped provenance), ``plots`` (plotly
figures) and ``paging`` (the table's page, the runs the figures draw). This module only lays them out.

At scale the browser receives only what it shows: filters and sort run over every loaded run, then the table
update carries one page (:data:`~capbench.leaderboard.paging.PAGE_ROWS` runs), the figures at most
:data:`~capbench.leaderboard.paging.PLOT_RUNS` runs (the fronts always among them), the run pickers the page's
runs; the download's CSV (every filtered run) is written when its button is clicked.

Run it with ``capbench leaderboard [RESULTS.csv ...]``; as a Hugging Face Space this file is the ``app_file``
(README.md front matter) and reads the CSVs named in ``$CAPBENCH_RESULTS`` (``os.pathsep``-separated), else
the ``results*.csv`` next to this file, else ``results/results.csv`` under the working directory.

Nothing reaches the network: Gradio's analytics are switched off before it is imported, and the theme uses
the system's fonts instead of fetching web fonts.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no calls home at start
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import atexit
import hashlib
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from capbench.leaderboard import plots
from capbench.leaderboard.data import Results, load_results
from capbench.leaderboard.details import run_details_markdown, warnings_markdown
from capbench.leaderboard.escape import escape_markdown
from capbench.leaderboard.paging import PAGE_ROWS, PLOT_RUNS, clamp_page, page_count, page_of, plot_sample
from capbench.leaderboard.pareto import cost_accuracy_front, pareto_mask
from capbench.leaderboard.plots.capacity import PER_GPU, PER_USER
from capbench.leaderboard.radar import normalize
from capbench.leaderboard.selection import RunIndex
from capbench.leaderboard.table import (
    DISPLAY_COLUMNS,
    FILTER_DIMENSIONS,
    csv_bytes,
    display_frame,
    display_text,
    filter_options,
    format_value,
)
from capbench.paths import replace_file
from capbench.summary.columns import BY_NAME

TITLE = "capbench CAP leaderboard"
RESULTS_ENV = "CAPBENCH_RESULTS"
"""Environment variable naming the CSVs to show (``os.pathsep``-separated) when none are passed."""

DEFAULT_SORT = "usd_per_1m_output_tokens"
RADAR_DEFAULT_RUNS = 4
"""How many runs the radar shows before the user picks: the Pareto front's first ones, else the table's."""

THIRD_CHOICES: tuple[tuple[str, str], ...] = tuple(
    (BY_NAME[name].header, name) for name in ("output_tokens_per_s", "tpot_mean_s")
)


def default_csv_paths() -> list[Path]:
    """The CSVs a Space (or a bare ``capbench leaderboard``) shows: ``$CAPBENCH_RESULTS``, else the first found."""
    named = os.environ.get(RESULTS_ENV, "")
    if named.strip():
        return [Path(p) for p in named.split(os.pathsep) if p.strip()]
    beside = sorted(Path(__file__).parent.glob("results*.csv"))  # a Space built by --build-space
    if beside:
        return beside
    fallback = Path.cwd() / "results" / "results.csv"
    return [fallback] if fallback.is_file() else []


VIEW_CACHE = 4
"""Filtered and sorted selections a board keeps (each holds :data:`VIEW_COLUMNS` of the selected runs)."""

VIEW_COLUMNS: tuple[str, ...] = (
    "run_id",
    "label",
    "usd_per_1m_output_tokens",
    "accuracy",
    "accuracy_task",
    "accuracy_metric",
    "output_tokens_per_s",
    PER_USER,
    PER_GPU,
    "capacity_point",
)
"""What a selection keeps of each run: what the Pareto fronts, the plot sample, the run pickers and the Pareto
list read; every other column is read from the loaded runs for the rows shown (a page, the drawn runs)."""


@dataclass
class View:
    """One filtered and sorted selection: its runs (:data:`VIEW_COLUMNS` only, in table order; the index holds
    each run's row in the loaded frame) and what the app derives from the whole selection, each computed on first
    use and kept with the view, so the events of one selection (the filter change, then the run pickers' and the
    radar's) share it."""

    runs: pd.DataFrame
    selected: np.ndarray
    """Per loaded run (by position), whether the selection holds it."""
    index: RunIndex

    def has(self, run_id: str | None) -> bool:
        """Whether the run ``run_id`` is selected."""
        position = self.index.position(run_id)
        return position is not None and bool(self.selected[position])

    @cached_property
    def cost_front(self) -> pd.DataFrame:
        """The cost-accuracy Pareto front of the selection (:func:`~capbench.leaderboard.pareto.cost_accuracy_front`)
        as the Pareto list and the radar read it."""
        return cost_accuracy_front(self.runs)

    @cached_property
    def drawn(self) -> pd.DataFrame:
        """The runs the figures draw (:func:`plot_runs`), as :data:`VIEW_COLUMNS`."""
        return plot_runs(self.runs)


@dataclass
class Board:
    """The loaded results, their filter and sort index, and where the filtered CSV download is written (one
    file per view)."""

    paths: list[Path]
    results: Results = field(init=False)
    index: RunIndex = field(init=False)
    download_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.download_dir = Path(tempfile.mkdtemp(prefix="capbench-leaderboard-"))
        atexit.register(shutil.rmtree, self.download_dir, ignore_errors=True)
        self.reload()

    views: dict[tuple[Any, ...], View] = field(init=False, default_factory=dict)

    lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def reload(self) -> None:
        """Read the files again; the filter codes are computed once here (:class:`RunIndex`)."""
        results = load_results(self.paths)
        index = RunIndex(results.frame)
        if DEFAULT_SORT in results.frame.columns:
            index.order(DEFAULT_SORT, descending=False)  # the first page's order, ready before the first visitor
        with self.lock:
            self.results = results
            self.index = index
            self.views = {}

    def view(self, selections: dict[str, Sequence[str] | None], sort_by: str, descending: bool) -> View:
        """The filtered and sorted runs, all of them (paging comes after), as a :class:`View`; the runs' index
        holds each run's row in :attr:`frame` (:meth:`rows` gives the full rows). The last :data:`VIEW_CACHE`
        views are kept, so turning a page does not filter and sort again."""
        key = (tuple((dim, tuple(sel or ())) for dim, sel in selections.items()), sort_by, descending)
        with self.lock:  # Gradio runs events in threads
            found = self.views.get(key)
            frame, index = self.results.frame, self.index
        if found is not None:
            return found
        selected = index.mask(selections)
        positions = index.sorted_positions(selected, sort_by, descending=descending)
        columns = frame.columns.get_indexer([c for c in VIEW_COLUMNS if c in frame.columns])
        made = View(frame.iloc[positions, columns], selected, index)  # only these columns are copied
        with self.lock:
            if self.index is index:  # not a view of files read before a reload
                self.views[key] = made
                while len(self.views) > VIEW_CACHE:
                    del self.views[next(iter(self.views))]
        return made

    def rows(self, view: pd.DataFrame) -> pd.DataFrame:
        """The full rows (every column) of the runs of ``view`` (a part of a :attr:`View.runs`), in its order."""
        return self.frame.loc[view.index]

    @property
    def frame(self) -> pd.DataFrame:
        return self.results.frame


def _choices(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, run_id) pairs for the run pickers; the label is shown as text by Gradio, never as HTML. The app
    offers the runs of the table's page and those already picked, not every selected run."""
    labels = frame["label"] if "label" in frame else frame["run_id"]
    return [(f"{label} [{run_id}]", str(run_id)) for label, run_id in zip(labels, frame["run_id"], strict=True)]


def styled_table(frame: pd.DataFrame) -> Any:
    """The display table: numbers stay numbers (so it sorts as numbers), shown through ``display_text``
    ("—" = not measured; percent columns were scaled once, by ``display_frame``)."""
    return display_frame(frame).style.format(display_text).hide(axis="index")


def _status(board: Board, shown: int, page: int = 1) -> str:
    """The selection's size and the page shown: "N of T runs shown" (filters applied), then which rows."""
    files = ", ".join(escape_markdown(str(p)) for p in board.paths) or "none"
    total = len(board.frame)
    if total == 0:
        return (
            f"**No runs to show.** Files read: {files}. Pass a CSV written by `capbench export` "
            "(`capbench leaderboard results.csv`)."
        )
    first = (page - 1) * PAGE_ROWS + 1 if shown else 0
    last = min(page * PAGE_ROWS, shown)
    pages = page_count(shown)
    return f"{shown} of {total} runs shown · rows {first}–{last}, page {page} of {pages} · files: {files}"


def _plot_caption(drawn: int, shown: int) -> str:
    if drawn >= shown:
        return ""
    return (
        f"The figures draw {drawn} of the {shown} selected runs: every run on a Pareto front or at capacity, and "
        "an even sample of the rest in table order. Filter to draw them all."
    )


def plot_runs(frame: pd.DataFrame, limit: int = PLOT_RUNS) -> pd.DataFrame:
    """The runs the figures draw (:func:`~capbench.leaderboard.paging.plot_sample`): the cost-accuracy front,
    the throughput-interactivity front and the runs at capacity always; at most ``limit`` in all otherwise."""
    if len(frame) <= limit:
        return frame
    keep = np.array(pareto_mask(frame, [("usd_per_1m_output_tokens", "min"), ("accuracy", "max")]), dtype=bool)
    keep |= pareto_mask(frame, [(PER_USER, "max"), (PER_GPU, "max")]).to_numpy()
    if "capacity_point" in frame:
        keep |= frame["capacity_point"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return plot_sample(frame, keep, limit)


def _pareto_markdown(frame: pd.DataFrame, front: pd.DataFrame | None = None) -> str:
    """The Pareto list under the scatter: the cost-accuracy ``front`` of ``frame`` (computed when not given)."""
    front = cost_accuracy_front(frame) if front is None else front
    if front.empty:
        return "**Pareto front:** none (no selected run has both a cost and an accuracy)."
    tasks = front_tasks(frame)
    caveat = (
        f" **Caution:** the selection mixes {len(tasks)} accuracy tasks or metrics "
        f"({escape_markdown(', '.join(tasks))}); filter by task to compare like with like."
        if len(tasks) > 1
        else ""
    )
    lines = [
        "**Pareto front** (no other selected run is at least as cheap and as accurate, and better on one):" + caveat,
        "",
        "| run | accuracy (%) | cost (USD / 1M output tokens) | throughput (output tokens/s) |",
        "|---|---|---|---|",
    ]
    for _, row in front.iterrows():
        label = escape_markdown(str(row.get("label", row["run_id"])))
        lines.append(
            f"| {label} | {format_value('accuracy', row['accuracy'])} | "
            f"{format_value('usd_per_1m_output_tokens', row['usd_per_1m_output_tokens'])} | "
            f"{format_value('output_tokens_per_s', row.get('output_tokens_per_s'))} |"
        )
    return "\n".join(lines)


def front_tasks(frame: pd.DataFrame) -> list[str]:
    """The distinct ``task (metric)`` pairs among runs with both a cost and an accuracy (the front's candidates)."""
    needed = {"accuracy", "usd_per_1m_output_tokens", "accuracy_task", "accuracy_metric"}
    if frame.empty or not needed <= set(frame.columns):
        return []
    both = frame[frame["accuracy"].notna() & frame["usd_per_1m_output_tokens"].notna()]
    pairs = {f"{task} ({metric})" for task, metric in zip(both["accuracy_task"], both["accuracy_metric"], strict=True)}
    return sorted(pairs)


def _radar_runs(frame: pd.DataFrame, front: pd.DataFrame | None = None) -> list[str]:
    """The radar's runs before the user picks: the first of the cost-accuracy ``front`` (computed when not given),
    else the first of ``frame``."""
    front = cost_accuracy_front(frame) if front is None else front
    pool = front if not front.empty else frame
    return [str(r) for r in pool["run_id"].head(RADAR_DEFAULT_RUNS)]


RUN_VIEW_OUTPUTS = 6
"""The run details' outputs: the provenance text and five figures (utilization, roofline, experts, latency,
capacity search)."""

TABLE_MAX_HEIGHT_PX = 3000
"""The table's height limit: tall enough for a whole page of runs, so the page scrolls, not a box inside it."""

MAX_CELL_CHARS = 60
"""Longer names are cut in the table (ending in "..."; a click on the cell shows the whole value, and the run's
details view shows it in full), so one long name cannot push every other column out of view."""


def default_selection(dimension: str, options: Sequence[str]) -> list[str]:
    """What a filter starts with: complete runs only (partial, failed or still-running runs are shown, with their
    status, once the user picks them in the Status filter or clears it); every other filter starts empty."""
    return ["complete"] if dimension == "status" and "complete" in options else []


def _picker_choices(page: pd.DataFrame, selection: pd.DataFrame, picked: Sequence[str]) -> list[tuple[str, str]]:
    """The page's runs, then the picked runs not on the page (looked up in the whole selection)."""
    on_page = {str(r) for r in page["run_id"]}
    missing = [r for r in picked if r not in on_page]
    if not missing:  # nothing to look up among every selected run
        return _choices(page)
    extra = selection[selection["run_id"].astype(str).isin(missing)]
    return _choices(pd.concat([page, extra])) if len(extra) else _choices(page)


def build_app(paths: Sequence[str | Path]) -> gr.Blocks:
    """The leaderboard for the CSVs ``paths`` (missing or bad files become visible warnings, not errors).

    The table sends one page of :data:`~capbench.leaderboard.paging.PAGE_ROWS` runs per update (filters and
    sort apply to every run first); the figures draw at most :data:`~capbench.leaderboard.paging.PLOT_RUNS`
    runs; the download button writes the CSV of every filtered run when it is clicked.
    """
    board = Board([Path(p) for p in paths])
    dims = list(FILTER_DIMENSIONS)
    sort_choices = [(header, column) for column, header in DISPLAY_COLUMNS]

    def view(selections: Sequence[Sequence[str] | None], sort_by: str, descending: bool) -> View:
        return board.view(dict(zip(dims, selections, strict=True)), sort_by or DEFAULT_SORT, bool(descending))

    def download(*args: Any) -> str:
        """The filtered rows' CSV, named by its content's hash: the same view reuses its file, and a file is
        complete before its name exists (written aside, then renamed), so no session reads half of one."""
        *selections, sort_by, descending = args
        data = csv_bytes(board.rows(view(selections, sort_by, descending).runs))
        path = board.download_dir / f"capbench-runs-{hashlib.sha256(data).hexdigest()[:16]}.csv"
        if not path.exists():
            replace_file(path, lambda f: f.write(data))
        return str(path)

    def table_page(frame: pd.DataFrame, page: float | None) -> tuple[int, pd.DataFrame]:
        """The page number in range and the page's full rows."""
        number = clamp_page(page, len(frame))
        return number, board.rows(page_of(frame, number))

    def refresh(*args: Any, keep_shown: bool = False) -> tuple[Any, ...]:
        """Every output for the inputs ``args``, but what another event draws or the page already shows.

        Where the picked run or the radar's runs change, the pickers' own change events (which Gradio fires for
        the new value) draw the run details or the radar: they are not built and sent twice. With ``keep_shown``
        (a filter, sort or third-dimension change; not the page's load or a reload, after which the files may
        differ) the details of a run that stays picked are kept as shown. The radar of unchanged runs is drawn
        again: a new sort can reorder its traces."""
        *selections, sort_by, descending, third, radar_in, run_in, page = args
        selection = view(selections, sort_by, descending)
        frame = selection.runs
        number, rows = table_page(frame, page)
        radar_ids = [r for r in (radar_in or []) if selection.has(r)] or _radar_runs(frame, selection.cost_front)
        run_id = run_in if selection.has(run_in) else (str(rows["run_id"].iloc[0]) if len(rows) else None)
        drawn = board.rows(selection.drawn)
        radar_changes = radar_ids != list(radar_in or [])  # then radar_runs.change draws it
        run_view_elsewhere = run_id != run_in or keep_shown  # run_pick.change draws it, or it is shown
        return (
            _status(board, len(frame), number),
            styled_table(rows),
            number,
            plots.cap_scatter(drawn, third=third),
            _pareto_markdown(frame, selection.cost_front),
            plots.throughput_interactivity(drawn),
            _plot_caption(len(drawn), len(frame)),
            gr.update(choices=_picker_choices(rows, frame, radar_ids), value=radar_ids),
            gr.skip() if radar_changes else _radar(frame, radar_ids),
            gr.update(choices=_picker_choices(rows, frame, [run_id] if run_id else []), value=run_id),
            *((gr.skip(),) * RUN_VIEW_OUTPUTS if run_view_elsewhere else _run_view(frame, run_id)),
        )

    def first_page(*args: Any) -> tuple[Any, ...]:
        """A filter, the sort or the third dimension changed: back to the first page. The run details are those
        of the run picked (unchanged, or drawn by ``run_pick``'s change event when the pick changes)."""
        return refresh(*args[:-1], 1, keep_shown=True)

    def turn(step: int) -> Any:
        def go(*args: Any) -> tuple[Any, ...]:
            *selections, sort_by, descending, page = args
            frame = view(selections, sort_by, descending).runs
            number, rows = table_page(frame, (page or 1) + step)
            return _status(board, len(frame), number), styled_table(rows), number

        return go

    def _radar(frame: pd.DataFrame, radar_ids: Sequence[str]) -> Any:
        chosen = board.rows(frame[frame["run_id"].astype(str).isin(list(radar_ids))])
        if chosen.empty:
            return plots.empty_figure("Pick runs to compare on the radar.")
        return plots.cap_radar(chosen, normalize(chosen))

    def _run_view(frame: pd.DataFrame, run_id: str | None) -> tuple[Any, ...]:
        match = frame[frame["run_id"].astype(str) == run_id] if run_id else frame.iloc[0:0]
        if match.empty:
            empty = plots.empty_figure("No run selected.")
            return ("Select a run.", empty, empty, empty, empty, empty)
        row = board.rows(match.iloc[:1]).iloc[0].to_dict()
        return (
            run_details_markdown(row),
            plots.utilization_bars(row),
            plots.roofline(row),
            plots.expert_activation(row),
            plots.latency_percentiles(row),
            plots.capacity_curve(board.frame, row),  # every probe of its search, whatever the filters keep
        )

    def reload(*selections: Sequence[str] | None) -> tuple[Any, ...]:
        """Re-read the files; keep each filter's picks that still exist (the table refreshes after)."""
        board.reload()
        options = filter_options(board.frame)
        kept = [
            gr.update(choices=options[dim], value=[v for v in (sel or []) if v in options[dim]])
            for dim, sel in zip(dims, selections, strict=True)
        ]  # a status filter the user had cleared stays cleared
        return (warnings_markdown(board.results.warnings), *kept)

    options = filter_options(board.frame)
    # Gradio copies each download into its cache: drop copies older than an hour, checked hourly.
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# {TITLE}\nCost, accuracy and performance of Mixture-of-Experts serving runs measured by "
            "capbench. Empty figures are shown as **—**: not measured, "
            "never 0. Runs labeled `CPU (…)` ran on a CPU: they are not GPU figures."
        )
        warnings_md = gr.Markdown(warnings_markdown(board.results.warnings), elem_id="load-warnings")
        status_md = gr.Markdown(elem_id="status")
        with gr.Row():
            filters = [
                gr.Dropdown(
                    choices=options[dim],
                    value=default_selection(dim, options[dim]),
                    multiselect=True,
                    label=FILTER_DIMENSIONS[dim],
                    elem_id=f"filter-{dim}",
                )
                for dim in dims
            ]
        with gr.Row():
            sort_by = gr.Dropdown(choices=sort_choices, value=DEFAULT_SORT, label="Sort by", elem_id="sort-by")
            descending = gr.Checkbox(value=False, label="Descending", elem_id="sort-descending")
            reload_button = gr.Button("Reload files", elem_id="reload", size="sm")
        table = gr.Dataframe(
            interactive=False,
            wrap=True,
            max_chars=MAX_CELL_CHARS,
            max_height=TABLE_MAX_HEIGHT_PX,
            elem_id="runs-table",
            label="Runs",
        )
        with gr.Row():
            previous_button = gr.Button("◀ Previous page", elem_id="page-previous", size="sm")
            page_number = gr.Number(value=1, precision=0, minimum=1, label="Page", elem_id="page", scale=0)
            next_button = gr.Button("Next page ▶", elem_id="page-next", size="sm")
            download_button = gr.Button("Download the filtered table (CSV)", elem_id="download", size="sm")
            download_file = gr.DownloadButton("Save the CSV again", elem_id="download-file", size="sm")
        with gr.Tab("Cost vs accuracy"):
            third = gr.Radio(
                choices=list(THIRD_CHOICES),
                value="output_tokens_per_s",
                label="Third dimension (marker size and color)",
                elem_id="third",
            )
            scatter = gr.Plot(elem_id="cap-scatter", label="Cost vs accuracy")
            pareto_md = gr.Markdown(elem_id="pareto")
        with gr.Tab("Throughput vs interactivity"):
            interactivity_plot = gr.Plot(elem_id="interactivity", label="Throughput per GPU vs tokens/s per user")
        caption_md = gr.Markdown(elem_id="plot-caption")
        with gr.Tab("CAP radar"):
            radar_runs = gr.Dropdown(multiselect=True, label="Runs on the radar", elem_id="radar-runs")
            radar_plot = gr.Plot(elem_id="cap-radar", label="CAP radar")
        with gr.Tab("Run details"):
            run_pick = gr.Dropdown(label="Run", elem_id="run-pick")
            details_md = gr.Markdown(elem_id="run-details")
            with gr.Row():
                util_plot = gr.Plot(elem_id="utilization", label="S-MBU / S-MFU per phase")
                roof_plot = gr.Plot(elem_id="roofline", label="Roofline")
            with gr.Row():
                expert_plot = gr.Plot(elem_id="experts", label="Expert activation per MoE layer")
                latency_plot = gr.Plot(elem_id="latency", label="Latency distribution")
            capacity_plot = gr.Plot(elem_id="capacity-curve", label="Capacity search")

        inputs = [*filters, sort_by, descending, third, radar_runs, run_pick, page_number]
        outputs = [
            status_md,
            table,
            page_number,
            scatter,
            pareto_md,
            interactivity_plot,
            caption_md,
            radar_runs,
            radar_plot,
            run_pick,
            details_md,
            util_plot,
            roof_plot,
            expert_plot,
            latency_plot,
            capacity_plot,
        ]
        controls: list[Any] = [*filters, sort_by, descending, third]
        for control in controls:
            control.change(first_page, inputs=inputs, outputs=outputs)
        view_inputs = [*filters, sort_by, descending]
        for button, step in ((previous_button, -1), (next_button, 1)):
            button.click(turn(step), inputs=[*view_inputs, page_number], outputs=[status_md, table, page_number])
        page_number.submit(turn(0), inputs=[*view_inputs, page_number], outputs=[status_md, table, page_number])
        download_button.click(download, inputs=view_inputs, outputs=download_file).then(
            None, js="() => { document.querySelector('#download-file')?.click(); }"
        )
        radar_runs.change(
            lambda *a: _radar(view(a[: len(dims)], a[len(dims)], a[len(dims) + 1]).runs, a[-1] or []),
            inputs=[*view_inputs, radar_runs],
            outputs=radar_plot,
        )
        run_pick.change(
            lambda *a: _run_view(view(a[: len(dims)], a[len(dims)], a[len(dims) + 1]).runs, a[-1]),
            inputs=[*view_inputs, run_pick],
            outputs=[details_md, util_plot, roof_plot, expert_plot, latency_plot, capacity_plot],
        )
        reload_button.click(reload, inputs=filters, outputs=[warnings_md, *filters]).then(
            refresh, inputs=inputs, outputs=outputs
        )
        app.load(refresh, inputs=inputs, outputs=outputs)
    return app


THEME_FONTS: tuple[list[str], list[str]] = (["system-ui", "sans-serif"], ["ui-monospace", "monospace"])
"""Sans and monospace font stacks: local system fonts, so the browser fetches no web font."""


def launch(
    paths: Sequence[str | Path], *, host: str | None = "127.0.0.1", port: int | None = None, quiet: bool = False
) -> None:
    """Build the app and serve it until interrupted (``host=None``: Gradio's default / ``$GRADIO_SERVER_NAME``)."""
    app = build_app(paths)
    theme = gr.themes.Default(font=THEME_FONTS[0], font_mono=THEME_FONTS[1])
    app.launch(server_name=host, server_port=port, theme=theme, quiet=quiet, footer_links=[], show_error=True)


def main() -> None:
    """The Space entry point: serve the default CSVs on the host and port Gradio's environment names."""
    launch(default_csv_paths(), host=None)


if __name__ == "__main__":
    main()
