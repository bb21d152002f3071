"""The search report: one self-contained ``report.html`` (plotly, its JavaScript inlined: it opens offline).

It plots a :class:`search.summary.report_data.ReportData` and computes nothing but layout:

1. every trial, its score (val_acc; val_miou for segmentation) against the latency the search ranks (latency_norm_ms,
   measured here, or latency_target_ms, predicted from a latency table) (completed; stopped early at their last value; the front as a step
   line; controls marked), and beside it the confirmed architectures' test_acc mean with its 95% interval against
   their latency measured alone. Hover a point for its architecture and numbers; click it to open its MLflow run;
2. placement insight: per stage x attention type, the mean difference in val_acc and in the ranked latency to trials
   with no attention at that stage (heatmaps), and each knob's importance for each objective (Optuna's evaluator);
3. the hypervolume after each trial (``optuna.visualization.plot_hypervolume_history``);
4. the confirmed table and the verdict against the plain backbone; the trials that are not on the chart;
5. a segmentation search: a few test scenes with their true and predicted masks (``ReportData.samples``).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from search.summary.report_data import (LATENCY_OBJECTIVE, LATENCY_WORDS, NONE, Confirmed, Outcome, PlacementEffects, ReportData,
                                        TrialPoint, Verdict, diff_text)

REPORT_HTML = "report.html"
_MAX_BARS = 12  # knobs shown per importance chart: the most important ones
_GREY, _ORANGE, _BLUE, _LIGHT = "#868e96", "#d9480f", "#1c7ed6", "#ced4da"
_VERDICT_COLOURS = {Verdict.REFERENCE: _BLUE, Verdict.BETTER: "#2b8a3e", Verdict.WORSE: "#c92a2a",
                    Verdict.WITHIN_NOISE: _GREY}
# Opens the MLflow run of a clicked point: its address is customdata[0] (none on heatmaps and bars).
_CLICK_SCRIPT = """<script>
window.addEventListener('load', () => document.querySelectorAll('.plotly-graph-div').forEach(div =>
  div.on('plotly_click', event => {
    const point = event.points[0];
    const url = point && Array.isArray(point.customdata) ? point.customdata[0] : '';
    if (typeof url === 'string' && url.startsWith('http')) window.open(url, '_blank');
  })));
</script>"""
_HOVER = ("<b>%{customdata[1]}</b><br>trial %{customdata[2]} · %{customdata[3]}<br>%{customdata[9]} %{customdata[4]}"
          "<br>%{customdata[10]} %{customdata[5]} ms · latency_ms %{customdata[6]} ms"
          "<br>params_m %{customdata[7]} · flops_g %{customdata[8]}<extra></extra>")


def write_report(data: ReportData, *, folder: str | Path) -> Path:
    """Write ``report.html`` into ``folder`` (created if missing); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [("front", trials_figure(data)), ("placement", placement_figure(data)),
               ("importance", importance_figure(data)), ("hypervolume", hypervolume_figure(data)),
               ("prescreen", prescreen_figure(data)), ("samples", samples_figure(data))]
    parts = {name: pio.to_html(figure, full_html=False, include_plotlyjs=(i == 0), div_id=f"plot-{name}",
                               config={"displaylogo": False})
             for i, (name, figure) in enumerate(figures) if figure is not None}
    path = folder / REPORT_HTML
    path.write_text(_page(data, parts), encoding="utf-8")
    return path


# ------------------------------------------------------------------ figures

def trials_figure(data: ReportData) -> go.Figure:
    """The score (val_acc, val_miou) vs the ranked latency of every trial with both (left), the confirmed test score vs
    latency alone (right)."""
    confirmed = [row for row in data.confirmed if row.mean is not None and row.latency_ms is not None]
    figure = make_subplots(rows=1, cols=2 if confirmed else 1, horizontal_spacing=0.1, column_widths=(
        [0.62, 0.38] if confirmed else None), subplot_titles=[
        f"Search: {data.score} vs {data.latency} (one training seed)",
        *([f"Confirmation: {data.test_score} mean ± 95% CI"] if confirmed else [])])
    points = [p for p in data.points if p.score is not None and p.ranked_ms is not None
              and p.outcome in (Outcome.COMPLETED, Outcome.EARLY_STOPPED)]
    stopped = [p for p in points if p.outcome is Outcome.EARLY_STOPPED]
    full = [p for p in points if p.outcome is Outcome.COMPLETED]
    front = sorted((p for p in full if p.pareto), key=lambda p: p.ranked_ms)
    groups = [
        ("stopped early (last epoch's value)", stopped, dict(symbol="circle-open", color=_GREY, size=8)),
        ("full budget", [p for p in full if not p.pareto and not p.control], dict(color=_GREY, size=9)),
        ("Pareto front", [p for p in front if not p.control], dict(color=_ORANGE, size=11)),
        ("controls (orange edge: on the front)", [p for p in full if p.control], dict(
            symbol="square", color=_BLUE, size=11, line=dict(color=[_ORANGE if p.pareto else "white" for p in full
                                                                     if p.control], width=2))),
    ]
    if front:
        figure.add_trace(go.Scatter(x=[p.ranked_ms for p in front], y=[p.score for p in front],
                                    mode="lines", line=dict(shape="hv", color=_ORANGE, width=1.5),
                                    name="front (step)", hoverinfo="skip"), row=1, col=1)
    for name, group, marker in groups:
        if group:
            labelled = name.startswith("controls")
            figure.add_trace(go.Scatter(
                x=[p.ranked_ms for p in group], y=[p.score for p in group],
                mode="markers+text" if labelled else "markers", text=[p.control for p in group],
                textposition="top center", textfont=dict(color=_BLUE, size=10), marker=marker, name=name,
                customdata=[_custom(p, score=data.score, latency=data.latency) for p in group], hovertemplate=_HOVER), row=1, col=1)
    figure.update_xaxes(title_text=f"{data.latency} ({LATENCY_WORDS[data.latency]}; lower is better)", row=1, col=1)
    figure.update_yaxes(title_text=f"{data.score} (validation split, fraction)", row=1, col=1)
    if confirmed:
        _confirmed_traces(figure, confirmed, metric=data.test_score)
    figure.update_layout(height=520, legend=dict(orientation="h", y=-0.18), margin=dict(t=60, l=60, r=20),
                         template="plotly_white")
    return figure


def _confirmed_traces(figure: go.Figure, rows: Sequence[Confirmed], *, metric: str = "test_acc") -> None:
    for verdict in Verdict:
        group = [r for r in rows if r.verdict is verdict]
        if not group:
            continue
        figure.add_trace(go.Scatter(
            x=[r.latency_ms for r in group], y=[r.mean for r in group], mode="markers+text",
            text=[r.name for r in group], textposition="top center", name=f"confirmed: {verdict}",
            marker=dict(color=_VERDICT_COLOURS[verdict], size=10, symbol="diamond"),
            error_y=dict(type="data", symmetric=False, array=[_gap(r.ci_high, r.mean) for r in group],
                         arrayminus=[_gap(r.mean, r.ci_low) for r in group], color=_VERDICT_COLOURS[verdict]),
            customdata=[["", r.arch_text, r.name, str(r.verdict), _fmt(r.mean, 4), _fmt(r.std, 4), r.n,
                         diff_text(r)] for r in group],
            hovertemplate=("<b>%{customdata[1]}</b><br>%{customdata[2]}: %{customdata[3]}<br>" + metric
                           + " %{customdata[4]}"
                           " ± %{customdata[5]} (std, %{customdata[6]} seeds)<br>vs plain %{customdata[7]}"
                           "<br>latency_ms %{x:.3f} (alone)<extra></extra>")), row=1, col=2)
    figure.update_xaxes(title_text="latency_ms (measured alone, batch 1)", row=1, col=2)
    low = min(r.ci_low if r.ci_low is not None else r.mean for r in rows)
    high = max(r.ci_high if r.ci_high is not None else r.mean for r in rows)
    span = max(high - low, 0.02)  # an interval wider than 0..1 (2 seeds: t = 12.7) is cut at the axis
    figure.update_yaxes(title_text=f"{metric} (official test split)", row=1, col=2,
                        range=[max(0.0, low - 0.1 * span), min(1.0, high + 0.1 * span)])


def samples_figure(data: ReportData) -> go.Figure | None:
    """A segment search's test scenes, one row each: the image (grey), the true mask, the predicted mask (one colour
    per class, the same scale in both)."""
    panel = data.samples
    if panel is None or not panel.images:
        return None
    rows = len(panel.images)
    figure = make_subplots(rows=rows, cols=3, horizontal_spacing=0.02, vertical_spacing=0.02,
                           column_titles=["image", "true mask", "predicted mask"])
    top = max(len(panel.classes) - 1, 1)
    for i in range(rows):
        figure.add_trace(go.Heatmap(z=panel.images[i], colorscale="gray", showscale=False, zmin=0, zmax=1,
                                    hoverinfo="skip"), row=i + 1, col=1)
        for col, mask in ((2, panel.truth[i]), (3, panel.predicted[i])):
            names = [[panel.classes[v] if v < len(panel.classes) else str(v) for v in line] for line in mask]
            figure.add_trace(go.Heatmap(z=mask, customdata=names, colorscale="Turbo", zmin=0, zmax=top,
                                        showscale=False, hovertemplate="%{customdata}<extra></extra>"),
                             row=i + 1, col=col)
    figure.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    figure.update_xaxes(showticklabels=False)
    figure.update_layout(height=230 * rows, width=720, margin=dict(t=40, l=10, r=10, b=10),
                         template="plotly_white")
    return figure


def placement_figure(data: ReportData) -> go.Figure:
    """Two heatmaps: per stage x type, the mean val_acc and ranked latency difference to 'none' at that stage."""
    acc, lat = data.accuracy_effects, data.latency_effects
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.14, subplot_titles=[
        f"{acc.metric} difference to no attention ({acc.trials})", f"{lat.metric} difference, ms ({lat.trials})"])
    for col, effects, scale, fmt, bar_x in ((1, acc, "RdBu", "+.3f", 0.43), (2, lat, "RdBu_r", "+.2f", 1.0)):
        figure.add_trace(_heatmap(effects, colorscale=scale, fmt=fmt, colorbar_x=bar_x), row=1, col=col)
        figure.update_xaxes(title_text="attention type", row=1, col=col)
        figure.update_yaxes(title_text="stage (0 = first)", autorange="reversed", row=1, col=col)
    figure.update_layout(height=120 + 70 * len(acc.cells), template="plotly_white", margin=dict(t=60, l=60, r=20))
    return figure


def _heatmap(effects: PlacementEffects, *, colorscale: str, fmt: str, colorbar_x: float) -> go.Heatmap:
    z = [[cell.effect for cell in row] for row in effects.cells]
    text = [[("" if cell.n == 0 else f"n={cell.n}") if cell.effect is None else
             f"baseline<br>n={cell.n}" if kind == NONE else f"{format(cell.effect, fmt)}<br>n={cell.n}"
             for kind, cell in zip(effects.types, row)] for row in effects.cells]
    means = [[_fmt(cell.mean, 4) for cell in row] for row in effects.cells]
    return go.Heatmap(
        z=z, x=list(effects.types), y=[f"stage {i}" for i in range(len(effects.cells))], text=text,
        texttemplate="%{text}", customdata=means, colorscale=colorscale, zmid=0, xgap=2, ygap=2,
        colorbar=dict(x=colorbar_x, len=0.9, thickness=12),
        hovertemplate=(f"%{{y}}, %{{x}}: mean {effects.metric} %{{customdata}}, difference to none %{{z:{fmt}}}"
                       "<br>%{text}<extra></extra>"))


def importance_figure(data: ReportData) -> go.Figure | None:
    """One horizontal bar chart per objective: the _MAX_BARS most important knobs (None when there are none)."""
    if not data.importances:
        return None
    metrics = list(data.importances)
    figure = make_subplots(rows=1, cols=len(metrics), horizontal_spacing=0.2,
                           subplot_titles=[f"importance for {metric}" for metric in metrics])
    for col, metric in enumerate(metrics, start=1):
        weights = sorted(data.importances[metric].items(), key=lambda kv: kv[1])[-_MAX_BARS:]
        figure.add_trace(go.Bar(x=[v for _, v in weights], y=[k for k, _ in weights], orientation="h",
                                marker_color=_ORANGE if col == 1 else _BLUE, name=metric, showlegend=False,
                                hovertemplate="%{y}: %{x:.3f}<extra></extra>"), row=1, col=col)
        figure.update_xaxes(title_text="importance (sums to 1)", row=1, col=col)
    height = 160 + 22 * min(_MAX_BARS, max(len(v) for v in data.importances.values()))
    figure.update_layout(height=height, template="plotly_white", margin=dict(t=60, l=120, r=20))
    return figure


def hypervolume_figure(data: ReportData) -> go.Figure | None:
    """Optuna's hypervolume history of the study (feasible full-budget trials only), or None without a trial."""
    if not data.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    with warnings.catch_warnings():  # experimental since Optuna 3.3, still in 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        figure = optuna.visualization.plot_hypervolume_history(data.study, reference_point=list(data.reference_point))
    acc, ms = data.reference_point
    figure.update_layout(
        title=f"Hypervolume after each study trial (reference point: {data.score} {acc:g}, {data.latency} "
              f"{ms:.3g} ms)", height=380, template="plotly_white")
    return figure


def prescreen_figure(data: ReportData) -> go.Figure | None:
    """strategy=oneshot: supernet val_acc (inherited weights) vs the trial's own val_acc, for the picks that
    trained in full; the unpicked scored architectures along the x axis' rug."""
    if not data.prescreen:
        return None
    trained = [p for p in data.prescreen if p.trained_val_acc is not None]
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=[p.supernet_val_acc for p in trained], y=[p.trained_val_acc for p in trained], mode="markers",
        name="picked, trained in full", text=[p.arch for p in trained],
        hovertemplate="%{text}<br>supernet val_acc %{x:.4f}<br>trained val_acc %{y:.4f}<extra></extra>"))
    others = [p for p in data.prescreen if not p.picked]
    figure.add_trace(go.Scatter(
        x=[p.supernet_val_acc for p in others], y=[min((p.trained_val_acc for p in trained), default=0.0)] * len(others),
        mode="markers", marker={"symbol": "line-ns-open", "size": 10}, name="scored, not picked",
        text=[p.arch for p in others], hovertemplate="%{text}<br>supernet val_acc %{x:.4f}<extra></extra>"))
    figure.update_layout(xaxis_title="val_acc with the supernet's inherited weights",
                         yaxis_title="val_acc trained from scratch (full budget)", height=420,
                         margin={"t": 30, "l": 60, "r": 20, "b": 50})
    return figure


# ------------------------------------------------------------------ page

def _page(data: ReportData, parts: dict[str, str]) -> str:
    counts = {outcome: sum(p.outcome is outcome for p in data.points) for outcome in Outcome}
    summary = (f"{len(data.points)} trials: {counts[Outcome.COMPLETED]} completed, "
               f"{counts[Outcome.EARLY_STOPPED]} stopped early by ASHA, {counts[Outcome.REJECTED]} rejected by the "
               f"constraints, {counts[Outcome.FAILED]} failed"
               + (f", {counts[Outcome.INTERRUPTED]} interrupted" if counts[Outcome.INTERRUPTED] else "")
               + (f"; {data.duplicates} repeated proposals reused an earlier result" if data.duplicates else "") + ".")
    mlflow_link = (f' <a href="{html.escape(data.experiment_url)}">Open the runs in MLflow</a>.'
                   if data.experiment_url else "")
    noise = (f"The plain backbone's {data.test_score} varies by ±{data.noise:.3f} (std) between confirmation seeds "
             f"alone; differences in {data.score} below that are noise" if data.noise is not None else
             "The seed-to-seed spread was not measured (no confirmation phase with 2 or more seeds); differences in "
             f"{data.score} smaller than it are noise")
    sections = [
        f"<h1>{html.escape(data.title)}</h1>",
        f"<p>{html.escape(summary)}{mlflow_link} Hover a point for its architecture; click it to open its MLflow "
        "run (the MLflow UI must be running: <code>python -m dashboards.ui</code>).</p>",
        parts.get("front", ""),
        "<h2>Where attention goes, and what it costs</h2>",
        f"<p>Each cell: the mean over the trials with that attention type at that stage, minus the mean over the "
        f"trials with none there (n = trials in the cell). These are marginal means over few trials whose other "
        f"stages differ too: with this many trials they are hints, not significant effects. {html.escape(noise)}.</p>",
        parts.get("placement", ""),
        f"<p>Knob importances: {html.escape(data.importance_note)}.</p>",
        parts.get("importance", ""),
        "<h2>Progress</h2>",
        parts.get("hypervolume", "<p>No trial completed, so there is no hypervolume.</p>"),
        "<h2>Confirmed on the held-out test split</h2>",
        _confirmed_table(data.confirmed, metric=data.test_score) if data.confirmed else
        "<p>No confirmation phase ran.</p>",
        *(["<h2>Test scenes: the image, its true mask and the predicted mask</h2>",
           f"<p>Predicted by {html.escape(data.samples.model)}.</p>", parts.get("samples", "")]
          if data.samples else []),
        f"<p><b>{html.escape(data.verdict)}</b></p>" if data.verdict else "",
        "<h2>Trials not on the chart</h2>",
        _other_table(data.points, latency=data.latency),
        *(_prescreen_section(data, parts) if data.prescreen else []),
    ]
    return _PAGE.format(title=html.escape(data.title), body="\n".join(sections), script=_CLICK_SCRIPT)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:24px auto;max-width:1280px;padding:0 16px;color:#1f2933}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{padding:3px 10px;border-bottom:1px solid #e4e7eb;text-align:left}}
th{{background:#f5f7fa}} td.num{{text-align:right;font-variant-numeric:tabular-nums}} h2{{margin-top:32px}}
</style></head><body>
{body}
{script}
</body></html>
"""


def _prescreen_section(data: ReportData, parts: dict[str, str]) -> list[str]:
    picked = [p for p in data.prescreen if p.picked]
    tau = (f"Over the picks that trained in full, the supernet's val_acc ranks their own with Kendall tau "
           f"{data.prescreen_tau:.2f}." if data.prescreen_tau is not None else
           "Too few picks trained in full to rank against the supernet.")
    rows = [f"<tr><td>{i}</td><td>{html.escape(p.arch)}</td><td class=num>{p.supernet_val_acc:.4f}</td>"
            f"<td class=num>{p.ranked_ms:.3f}</td><td class=num>{_fmt(p.trained_val_acc, 4)}</td></tr>"
            for i, p in enumerate(data.prescreen[:max(10, len(picked))], 1)]
    return ["<h2>One-shot pre-screen: the supernet's ranking against training from scratch</h2>",
            f"<p>{len(data.prescreen)} architectures scored with inherited weights; the {len(picked)} best by Pareto "
            f"rank were trained. {html.escape(tau)} How well the supernet ranks on the ground-truth table: "
            f"BENCHMARKS.md section 14.</p>", parts.get("prescreen", ""),
            _table(("rank", "architecture", "supernet val_acc", data.latency, "trained val_acc"), rows,
                   table_id="prescreen")]


def _confirmed_table(rows: Sequence[Confirmed], *, metric: str = "test_acc") -> str:
    target = any(r.latency_target_ms is not None for r in rows)  # a search ranked by a latency table
    head = ("name", "architecture", "seeds", f"{metric} mean ± std", "95% interval", "diff vs plain [95% CI]",
            "verdict", "latency_ms (alone)", "ONNX Runtime ms (alone)",
            *(("target ms (predicted)", "target ms (measured here)") if target else ()))
    body = []
    for r in rows:
        cells = [r.name, r.arch_text, str(r.n), f"{_fmt(r.mean, 4)} ± {_fmt(r.std, 4)}",
                 f"{_fmt(r.ci_low, 4)} .. {_fmt(r.ci_high, 4)}", diff_text(r), str(r.verdict),
                 _fmt(r.latency_ms, 3), _fmt(r.latency_onnxruntime_ms, 3),
                 *((_fmt(r.latency_target_ms, 3), _fmt(r.latency_target_measured_ms, 3)) if target else ())]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return _table(head, body, table_id="confirmed")


def _other_table(points: Sequence[TrialPoint], *, latency: str = LATENCY_OBJECTIVE) -> str:
    others = [p for p in points if p.outcome not in (Outcome.COMPLETED, Outcome.EARLY_STOPPED)
              or p.score is None or p.ranked_ms is None]
    if not others:
        return "<p>None: every trial is on the chart.</p>"
    head = ("trial", "outcome", "architecture", latency, "why")
    body = ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in (
        p.trial_id, str(p.outcome), p.arch, _fmt(p.ranked_ms, 3), p.note)) + "</tr>" for p in others]
    return _table(head, body, table_id="not-plotted")


def _table(head: Sequence[str], body: Sequence[str], *, table_id: str) -> str:
    return (f'<table id="{table_id}"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "\n".join(body) + "</tbody></table>")


def _custom(p: TrialPoint, *, score: str = "val_acc", latency: str = LATENCY_OBJECTIVE) -> list[str]:
    how = f"control {p.control}" if p.control else str(p.outcome)
    if p.outcome is Outcome.EARLY_STOPPED:
        how = f"stopped early after epoch {p.epochs}"
    return [p.run_url, p.arch, p.trial_id, how + (" · on the front" if p.pareto else ""), _fmt(p.score, 4),
            _fmt(p.ranked_ms, 3), _fmt(p.latency_ms, 3), _fmt(p.params_m, 3), _fmt(p.flops_g, 4), score, latency]


def _gap(high: float | None, low: float | None) -> float:
    return 0.0 if high is None or low is None else high - low


def _fmt(value: float | None, digits: int, *, signed: bool = False) -> str:
    return "n/a" if value is None else format(value, f"{'+' if signed else ''}.{digits}f")
