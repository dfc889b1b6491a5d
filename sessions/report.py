"""HTML reports: one self-contained file to hand to someone who was not at the terminal.

The report tells the story in the order a reader asks: a session's verdict (sessions.verdict) first, then its
panels by question (sessions.panels: forget, keep, privacy, general ability, loss terms, over unlearning steps,
the original's and Retrain's values as reference lines, every legend outside the plot), then its final metrics
(headline first, deltas from the values shown, in the one number format of sessions.numbers) and its cost; the
original's training, when it ran in the session, and the spec and environment come last, folded
(``<details>``). Several sessions get their verdicts, the panels overlaid (one colour per session) and a
side-by-side table before each session's folded details. A study report holds one overlaid plot per headline
metric, then the study's grid (methods x headline metrics, mean ± std with n, no ± for one seed, the
Retrain-relative scores and the ranking rule), its cells and its spec, folded. Everything is
inline: CSS in a <style> element, plots as <svg> drawn by matplotlib (Agg, imported on first use, so
nothing that imports this module pays for it); no JavaScript, nothing fetched.

Pure Python apart from matplotlib; the caller reads the store and the study and hands the data in.
"""
from __future__ import annotations

import html
import io
import json
import time
from pathlib import Path
from typing import Iterable

from sessions.files import atomic_write_text
from sessions.metric_order import headline_first
from sessions.numbers import fmt, fmt_delta, is_rate, shown
from sessions.panels import PALETTE, REFERENCE_COLOUR, Panel, compare_panels, event_panels, hex_colour
from sessions.series import (DELTA, Series, delta_columns, downsample, eval_series, final_table, is_headline_metric,
                             loss_series, training_steps, unlearning_steps, with_delta)
from sessions.attacks import attack_line
from sessions.summary import deletion_line, summary_metrics, took_words
from sessions.verdict import verdict_lines

HISTORY_CELLS = 20  # a history wider than this many requests is shown in blocks of consecutive requests
PLOT_POINTS = 1500  # per series: the file stays small, spikes survive (min/max per bucket)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-top: 1px solid #ccd; padding-top: .8em; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: .2em .7em; border-bottom: 1px solid #e3e6ea; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f5f7; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: .9em; padding-top: .4em; }
pre { background: #f6f8fa; padding: .6em .8em; overflow-x: auto; font-size: .85em; }
details { margin: .8em 0; } summary { cursor: pointer; color: #333; font-weight: 600; }
.meta { color: #555; } .verdict { font-size: 1.05em; background: #f3f7f3; padding: .5em .8em; } .plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plot svg { max-width: 100%; height: auto; }
"""


# --- plots -------------------------------------------------------------------------------------------
def svg_plot(title: str, series: dict[str, tuple[list, list]], xlabel: str = "step", ylabel: str = "",
             styles: dict[str, dict] | None = None, points: int = PLOT_POINTS,
             xticks: dict[float, str] | None = None) -> str:
    """One matplotlib line plot as an inline ``<svg>`` element (text kept as text); ``xticks`` names the
    x positions of a categorical axis."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.4), layout="constrained")
    axes = figure.add_subplot()
    legend: list[str] = []
    for label, (xs, ys) in series.items():
        dx, dy = downsample(list(xs), list(ys), points)
        style = {"linewidth": 1.3, "marker": "o" if len(dx) <= 12 else None, "markersize": 3,
                 **((styles or {}).get(label) or {})}
        group = style.pop("group", label)  # lines of one group (a method's seeds) share one legend entry
        axes.plot(dx, dy, label="_nolegend_" if group in legend else group, **style)
        legend.append(group)
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    if ylabel:
        axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    if xticks:
        axes.set_xticks(list(xticks), list(xticks.values()))
        axes.set_xlim(min(xticks) - 0.5, max(xticks) + 0.5)
    if legend:  # every plot has its legend, outside the plotting area
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return svg_text(matplotlib, figure)


def svg_text(matplotlib, figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML declaration and doctype: inline in HTML5


def svg_panel(panel: Panel, points: int = PLOT_POINTS) -> str:
    """One panel (sessions.panels) as an inline ``<svg>``: its lines in the palette, its reference lines dashed
    grey, its x range, integer ticks on a step or request axis, the legend outside the plotting area."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(5.2, 2.8), layout="constrained")
    axes = figure.add_subplot()
    for line in panel.lines:
        dx, dy = downsample(list(line.xs), list(line.ys), points)
        axes.plot(dx, dy, label=line.label, color=hex_colour(line.colour), linewidth=1.3,
                  marker="o" if len(dx) <= 12 else None, markersize=3)
    for reference in panel.references:
        axes.axhline(reference.y, color=hex_colour(REFERENCE_COLOUR), linestyle="--", linewidth=1,
                     label=f"{reference.label} ({reference.y:.1f})")
    axes.set_title(panel.title, fontsize=11)
    axes.set_xlabel(panel.xlabel)
    axes.set_ylabel("loss" if panel.key == "loss" else "%")
    lo, hi = panel.x_range
    axes.set_xlim(lo - (hi - lo) * 0.03, hi + (hi - lo) * 0.03)  # a point at the last step stays whole
    if panel.integer_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return svg_text(matplotlib, figure)


def panels_html(panels: list[Panel]) -> str:
    if not panels:
        return ""
    return '<div class="plots">' + "".join(f'<div class="plot">{svg_panel(p)}</div>' for p in panels) + "</div>"


# --- pieces of HTML ----------------------------------------------------------------------------------
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def table_html(headers: list[str], rows: Iterable[list[str]], caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


MADE_BY = "made by mmul-workbench on"   # how `sessions report --out` knows a file it may replace


def page(title: str, body: str) -> str:
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
            f'<p class="meta">{MADE_BY} {made}. Rates and AUCs in percent (one decimal), deltas '
            f"signed, times humanised; the raw numbers are in <code>mmul-workbench sessions export</code>.</p>{body}"
            "</body></html>\n")


def metrics_rows(events: list[dict], summary) -> tuple[list[str], list[list[str]]]:
    """The final metrics table of a session (headline metrics first), with before -> after deltas."""
    columns, rows = final_table(events)
    if not rows:
        flat = summary_metrics(summary)
        columns, rows = (["final"], {k: {"final": v} for k, v in flat.items()}) if flat else ([], {})
    displayed, delta = with_delta(columns), delta_columns(columns)
    out = []
    for name in headline_first(rows):
        values = rows[name]
        out.append([name, *(fmt_delta(values.get(delta[0]), values.get(delta[1]), name) if col == DELTA
                            else fmt(values.get(col), name) for col in displayed)])
    return ["metric", *displayed], out


COST_LABELS = (("original_seconds", "original training"), ("unlearning_seconds", "unlearning (training)"),
               ("evaluation_seconds", "evaluation"), ("wall_seconds", "wall clock"), ("steps", "steps"),
               ("examples", "examples"), ("examples_per_second", "examples / s"), ("peak_memory_mb", "peak memory"),
               ("memory", "measured as"), ("device", "device"), ("device_count", "devices"),
               ("torch_threads", "torch threads"), ("cpu_kernels", "CPU kernels"))
COST_CAPTION = ("Original training is 0 when the original came from the cache or was given; unlearning seconds "
                "exclude the evaluations during the loop; a request counts from the end of the one before (the first "
                "from the run's start); peak memory: CUDA's max allocated, or the process's peak RSS on the CPU.")


def cost_rows(summary) -> list[list[str]]:
    """What the run cost (its summary's ``cost``, engine/cost.py): one row per figure, the run's and each request's."""
    if not isinstance(summary, dict) or not isinstance(summary.get("cost"), dict):
        return []
    requests = [r.get("cost") or {} for r in summary.get("requests") or [] if isinstance(r, dict)]
    return [[label, *(fmt(cost.get(name), name) for cost in (summary["cost"], *requests))]
            for name, label in COST_LABELS if name in summary["cost"]]


def verdict_html(meta: dict) -> str:
    """The run's verdict (sessions.verdict), first in its section: the lines the caller put in ``meta["verdict"]``
    (held against a Retrain in the home), else those of its summary alone."""
    lines = meta["verdict"] if "verdict" in meta else \
        verdict_lines(meta.get("summary")) if meta.get("state") == "finished" else []
    if not lines:
        return ""
    return '<p class="verdict"><b>verdict</b>: ' + "<br>".join(esc(line) for line in lines) + "</p>"


def session_section(meta: dict, events: list[dict]) -> str:
    """One session: what ran, its verdict, its panels, its final metrics and cost; the original's training (when
    it ran here) and the spec and environment folded at the end. ``meta["retrain"]``, when the caller found a
    finished Retrain of the same deletion set, is its flat final metrics (the panels' Retrain lines)."""
    spec = meta.get("spec") or {}
    sid = meta.get("id", "?")
    what = " / ".join(str(spec.get(k, "?")) for k in ("method", "model", "data"))
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(meta["created"])) if meta.get("created") else "-"
    parts = [f'<section id="{esc(sid)}"><h2>{esc(sid)}{" — " + esc(meta["name"]) if meta.get("name") else ""}</h2>',
             verdict_html(meta),
             f'<p class="meta">{esc(what)}; state <b>{esc(meta.get("state", "?"))}</b>'
             + (f" ({esc(meta['message'])})" if meta.get("message") else "")
             + f"; created {esc(created)}; took {esc(took_words(meta))}; {len(events)} events,"
               f" {unlearning_steps(events)} unlearning steps</p>"]
    panels = event_panels(events, meta.get("retrain"))
    if panels:
        parts.append("<h3>curves</h3>" + panels_html(panels))
    headers, rows = metrics_rows(events, meta.get("summary"))
    if rows:
        parts.append("<h3>final metrics</h3>" + table_html(headers, rows))
    cost = cost_rows(meta.get("summary"))
    if cost:
        parts.append("<h3>cost</h3>" + table_html(["", "run", *(f"request {n}" for n in range(1, len(cost[0]) - 1))],
                                                  cost, COST_CAPTION))
    parts.append(history_html(events, meta.get("summary")))
    if meta.get("attacks"):
        parts.append("<h3>attacks</h3><ul>" + "".join(f"<li>{esc(attack_line(a))}</li>" for a in meta["attacks"])
                     + "</ul>")
    if not panels and not rows:
        parts.append("<p>No step or eval events in this session.</p>")
    parts.append(training_html(events))
    parts.append(spec_html(spec, meta.get("summary")))
    return "".join(parts) + "</section>"


def history_html(events: list[dict], summary) -> str:
    """A request run's history (sessions/history.py): each request's own Df headline (column) re-scored after
    each later request (row), as a heatmap table (blue forgotten, red still known, the monitor's colours) in blocks
    of requests where it is long, then its summary metrics; nothing for a run of one request."""
    from sessions.history import binned, heat_colour, history_from_events, history_metric, summary_words, value_range

    before, matrix = history_from_events(events)
    if len(matrix) < 2:
        return ""
    document = (summary or {}).get("history") if isinstance(summary, dict) else None
    # a run that did not finish has no summary: its events name the metric (it read `Df`, numbers unrounded)
    metric = (document or {}).get("metric") or history_metric(events)
    labels, before_row, rows = binned(before, matrix, HISTORY_CELLS)
    low, high = value_range(before, matrix)

    def cells(values) -> str:
        return "".join(f'<td style="background:{heat_colour(v, low, high)};color:#fff">{esc(fmt(v, metric))}</td>'
                       if v is not None else "<td></td>" for v in values)
    head = "<tr><th></th>" + "".join(f"<th>{esc(label)}</th>" for label in labels) + "</tr>"
    body = "".join(f"<tr><th>{esc(label)}</th>{cells(values)}</tr>"
                   for label, values in (("before", before_row), *zip(labels, rows)))
    words = f"<p>{esc(summary_words(document, fmt))}</p>" if document and document.get("summary") else \
        "<p>no history summary: the run did not finish its requests</p>"
    return (f"<h3>history</h3><p>{esc(metric or 'Df')} of each request's forget set (column) after request "
            f"(row)</p><table>{head}{body}</table>{words}")


def training_html(events: list[dict]) -> str:
    """The original's training when it ran in this session: its step count and loss, folded; else nothing."""
    steps = training_steps(events)
    if not steps:
        return ""
    losses = loss_series(events, training=True)
    plot = svg_plot("the original's training", losses, "training step", "loss") if losses else ""
    return (f"<details><summary>the original's training: {steps} steps (before the run; not in its curves)</summary>"
            f'<div class="plot">{plot}</div></details>')


ENVIRONMENT = ("device", "device_count", "torch_threads", "cpu_kernels", "memory")


def spec_html(spec: dict, summary) -> str:
    """The spec and the environment the run measured (device, devices, threads), folded, last."""
    cost = summary.get("cost") if isinstance(summary, dict) and isinstance(summary.get("cost"), dict) else {}
    environment = {key: cost[key] for key in ENVIRONMENT if key in cost}
    if isinstance(summary, dict) and summary.get("device") and "device" not in environment:
        environment["device"] = summary["device"]
    text = "<details><summary>spec and environment</summary><pre>" + esc(json.dumps(spec, indent=2, sort_keys=True,
                                                                                  default=str)) + "</pre>"
    facts = deletion_line(spec, summary, shown=1000)
    if facts:  # the fact ids the run deleted (its result's), as the spec names only how they were chosen
        text += f"<p>deletion: {esc(facts)}</p>"
    if environment:
        text += table_html(["environment", ""], [[k, str(v)] for k, v in environment.items()])
    return text + "</details>"


def side_by_side(sessions: list[tuple[dict, list[dict]]], labels: list[str]) -> str:
    """Final metrics of several sessions, one column each, headline first."""
    finals = []
    for meta, events in sessions:
        columns, rows = final_table(events)
        after = next((c for c in reversed(columns) if c.startswith("after")), None)
        final = {name: values[after] for name, values in rows.items() if after in values}
        finals.append(final or summary_metrics(meta.get("summary")))
    names = headline_first(name for final in finals for name in final)
    rows = [[name, *(fmt(final.get(name), name) for final in finals)] for name in names]
    steps = [["unlearning steps", *(str(unlearning_steps(events)) for _, events in sessions)]]
    return table_html(["metric", *labels], rows + steps)


def session_label(meta: dict) -> str:
    return f"{meta['name']} ({meta.get('id', '?')})" if meta.get("name") else str(meta.get("id", "?"))


def sessions_report(sessions: list[tuple[dict, list[dict]]]) -> str:
    """The report of one or more sessions: ``(meta, events)`` each (``SessionStore().get``, ``.events``). Several
    sessions: their verdicts, the panels overlaid (one colour per session), a side-by-side table, then each
    session's own section, folded."""
    ids = [meta.get("id", "?") for meta, _ in sessions]
    if len(ids) == 1:
        meta, events = sessions[0]
        return page(f"mmul-workbench report: session {ids[0]}", session_section(meta, events))
    labels = [session_label(meta) for meta, _ in sessions]
    verdicts = "".join(f"<li><a href=\"#{esc(meta.get('id', '?'))}\">{esc(label)}</a>{verdict_html(meta)}</li>"
                       for label, (meta, _) in zip(labels, sessions))
    runs = [(label, loss_series(events), eval_series(events, split="curve"))
            for label, (_, events) in zip(labels, sessions)]
    body = (f"<h2>verdicts</h2><ul>{verdicts}</ul>"
            + ("<h2>curves</h2>" + panels_html(compare_panels(runs)) if any(r[1] or r[2] for r in runs) else "")
            + "<h2>side by side</h2>" + side_by_side(sessions, labels)
            + "".join(f"<details><summary>{esc(label)}: its own report</summary>{session_section(meta, events)}"
                      "</details>" for label, (meta, events) in zip(labels, sessions)))
    return page(f"mmul-workbench report: {len(ids)} sessions", body)


# --- studies -----------------------------------------------------------------------------------------
def study_plot(metric: str, cells: list[tuple[str, int, list[dict], dict | None]], titles: dict[str, str]) -> str:
    """One headline metric over every cell: the curves over the run (x: fraction of the run, so runs of
    different lengths line up; one colour per method from the panels' palette) where cells evaluated during the
    run, each curve ending at its final evaluation (so a method that did not evaluate during the run, such as a
    short FT, still shows as its final point at 1.0); else the final values per method (each seed a point)."""
    methods = list(dict.fromkeys(method for method, *_ in cells))
    colour = {method: hex_colour(PALETTE[i % len(PALETTE)]) for i, method in enumerate(methods)}
    curves: Series = {}
    styles: dict[str, dict] = {}
    during = any(metric in eval_series(events, split="step") for _, _, events, _ in cells)
    for method, seed, events, _ in cells:
        steps = max(1, unlearning_steps(events))
        xs, ys = eval_series(events, split="curve").get(metric, ([], [])) if during else ([], [])
        if xs:
            label = f"{titles.get(method, method)} s{seed}"
            curves[label] = ([x / steps for x in xs], ys)
            styles[label] = {"color": colour[method], "group": titles.get(method, method)}
    if curves:
        return svg_plot(f"{metric} during the run", curves, "fraction of the run", "%" if is_rate(metric) else "",
                        styles)
    finals: Series = {}
    for method, seed, _, summary in cells:
        value = summary_metrics(summary).get(metric) if summary else None
        if value is not None:
            xs, ys = finals.setdefault(titles.get(method, method), ([], []))
            xs.append(float(methods.index(method)))
            ys.append(shown(metric, value))
    if not finals:
        return ""
    return svg_plot(f"{metric} at the end (each seed a point)", finals, "method", "%" if is_rate(metric) else "",
                    {label: {"color": colour[m], "linestyle": "none", "marker": "o", "group": label}
                     for m in methods for label in [titles.get(m, m)] if label in finals},
                    xticks={float(i): titles.get(m, m) for i, m in enumerate(methods)})


def study_report(document: dict, title: str, headers: list[str], rows: list[list[str]], caption: str,
                 metrics: list[str], cells: list[tuple[str, int, list[dict], dict | None]],
                 titles: dict[str, str]) -> str:
    """A study: its spec, its grid (already in words: sessions.study.grid), its cells and one plot per
    headline metric over the cells ``(method, seed, events, summary)`` that finished."""
    spec = document.get("spec") or {}
    listed = [[c.get("method", "?"), str(c.get("seed", "?")), c.get("session") or "-", c.get("state", "?")]
              for c in document.get("cells") or []]
    plots = [plot for plot in (study_plot(m, cells, titles) for m in metrics) if plot]
    body = (f"<p class=\"meta\">{esc(title)}</p>"
            + ("<h2>headline metrics</h2><div class=\"plots\">" + "".join(f'<div class="plot">{p}</div>' for p in plots)
               + "</div>" if plots else "")
            + "<h2>grid</h2>" + table_html(headers, rows, caption)
            + "<h2>cells</h2>" + table_html(["method", "seed", "session", "state"], listed)
            + "<details><summary>spec</summary><pre>" + esc(json.dumps(spec, indent=2, sort_keys=True, default=str))
            + "</pre></details>")
    return page(f"mmul-workbench report: study {document.get('study', '?')}", body)


def headline_names(stats: dict[str, dict]) -> list[str]:
    """Without a task's headline columns: every rate the study's methods report, at headline level."""
    names = {name for per_method in stats.values() for name in per_method}
    return sorted(n for n in names if is_rate(n) and is_headline_metric(n) and not n.endswith("_to_retrain"))


# --- writing -----------------------------------------------------------------------------------------
def write_report(path: Path, text: str) -> None:
    """Write the report atomically (``.partial`` + fsync + replace): a reader never sees half a file."""
    atomic_write_text(Path(path), text, sync_dir=False)


__all__ = ["headline_names", "metrics_rows", "session_section", "sessions_report", "study_report",
           "svg_plot", "write_report"]
