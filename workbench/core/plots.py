"""Plotly figures built from the dicts of `workbench.core.metrics` and `workbench.core.stats`.

    fig = per_class_bar(classification_metrics(gold, pred))
    fig = confusion_heatmap(m, normalize=True)
    fig.show()   # or gr.Plot(fig) in the UI, fig.write_html(...) in exports

Every function is pure: a dict in, a `plotly.graph_objects.Figure` out, with the same clean
look (`plotly_white`, a title, labelled axes), so the UI, the CLI's HTML report and the
exported model card all show the same pictures.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go

TEMPLATE = "plotly_white"
# Fixed colours per measure so P/R/F1 read the same in every chart.
COLORS = {"precision": "#4C78A8", "recall": "#F58518", "f1": "#54A24B",
          "loss": "#E45756", "accuracy": "#4C78A8", "macro_f1": "#54A24B"}
PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2",
           "#FF9DA6", "#9D755D", "#BAB0AC", "#EECA3B"]


def _layout(fig: go.Figure, title: str, x: str, y: str, **kw) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.02),
                      xaxis_title=x, yaxis_title=y,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
                      margin=dict(l=60, r=30, t=80, b=60), **kw)
    return fig


def per_class_bar(metrics: dict, title: str = "Per-class precision, recall and F1") -> go.Figure:
    """Grouped bars: precision, recall and F1 for each class, with support in the hover."""
    per = metrics.get("per_class", {})
    labels = list(per)
    fig = go.Figure()
    for key, name in (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1")):
        fig.add_bar(name=name, x=labels, y=[per[lab][key] for lab in labels],
                    marker_color=COLORS[key],
                    customdata=[per[lab].get("support", 0) for lab in labels],
                    hovertemplate="%{x}<br>" + name + " %{y:.3f}<br>support %{customdata}<extra></extra>")
    _layout(fig, title, "class", "score", barmode="group")
    fig.update_yaxes(range=[0, 1.05])
    return fig


def confusion_heatmap(metrics: dict, normalize: bool = False, title: str | None = None) -> go.Figure:
    """Confusion matrix: gold on y, predicted on x, each cell annotated with its count.

    With `normalize=True` colours show the share of each gold row (recall per cell), which
    keeps rare classes visible; the annotation then shows the share and the count.
    """
    conf = metrics["confusion"]
    labels = list(conf["labels"])
    counts = [list(r) for r in conf["matrix"]]
    if normalize:
        z = [[c / s if (s := sum(row)) else 0.0 for c in row] for row in counts]
        text = [[f"{v:.0%}<br>({c})" for v, c in zip(zr, cr)] for zr, cr in zip(z, counts)]
        cbar = "share of gold row"
    else:
        z = counts
        text = [[str(c) for c in row] for row in counts]
        cbar = "count"
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale="Blues",
        colorbar=dict(title=cbar),
        hovertemplate="gold %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    _layout(fig, title or ("Confusion matrix (row-normalized)" if normalize else "Confusion matrix"),
            "predicted", "gold")
    # Gold classes read top to bottom in label order, like a printed table.
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", side="bottom")
    return fig


def class_balance(counts: Mapping[str, int], title: str = "Class balance") -> go.Figure:
    """Bar chart of examples per class, with each bar's share of the total."""
    labels = list(counts)
    vals = [int(counts[k]) for k in labels]
    total = sum(vals) or 1
    fig = go.Figure(go.Bar(x=labels, y=vals, marker_color=PALETTE[0],
                           text=[f"{v} ({v / total:.0%})" for v in vals], textposition="outside"))
    _layout(fig, title, "class", "examples")
    return fig


def grouped_f1(per_template: Mapping[str, dict], title: str = "Per-class F1 by template") -> go.Figure:
    """Per-class F1 with one bar group per class and one colour per template.

    `per_template` maps a template name to its `classification_metrics` dict.
    """
    labels: list[str] = []
    for m in per_template.values():
        labels += [lab for lab in m.get("per_class", {}) if lab not in labels]
    fig = go.Figure()
    for i, (name, m) in enumerate(per_template.items()):
        per = m.get("per_class", {})
        fig.add_bar(name=name, x=labels, y=[per.get(lab, {}).get("f1", 0.0) for lab in labels],
                    marker_color=PALETTE[i % len(PALETTE)],
                    hovertemplate=f"{name}<br>%{{x}}: F1 %{{y:.3f}}<extra></extra>")
    _layout(fig, title, "class", "F1", barmode="group")
    fig.update_yaxes(range=[0, 1.05])
    return fig


def side_by_side_per_class(a: dict, b: dict, names: Sequence[str] = ("base", "adapter"),
                           title: str | None = None) -> go.Figure:
    """Per-class F1 of two runs side by side (e.g. base model vs. with a LoRA adapter)."""
    return grouped_f1({names[0]: a, names[1]: b},
                      title=title or f"Per-class F1: {names[0]} vs {names[1]}")


def training_curves(log_rows: list[dict], title: str = "Training progress") -> go.Figure:
    """Train loss (left axis) and dev accuracy / macro-F1 (right axis) against step.

    `log_rows` are the training log's JSON lines with "step" and any of "loss"/"train_loss",
    "dev_accuracy"/"eval_accuracy", "dev_macro_f1"/"eval_macro_f1"; a row lacking a key is
    skipped for that line, since loss is logged more often than dev metrics.
    """
    # Accept the names the trainer and Hugging Face's Trainer both use.
    def series(*keys: str):
        pts = []
        for r in log_rows:
            key = next((k for k in keys if r.get(k) is not None), None)
            if key is not None and r.get("step") is not None:
                pts.append((r["step"], r[key]))
        return [p[0] for p in pts], [p[1] for p in pts]

    fig = go.Figure()
    x, y = series("loss", "train_loss")
    fig.add_scatter(x=x, y=y, name="train loss", mode="lines", line=dict(color=COLORS["loss"]))
    for key, label in (("dev_accuracy", "dev accuracy"), ("dev_macro_f1", "dev macro-F1")):
        x, y = series(key, key.replace("dev_", "eval_"))
        if x:
            fig.add_scatter(x=x, y=y, name=label, mode="lines+markers", yaxis="y2",
                            line=dict(color=COLORS["accuracy" if "acc" in key else "macro_f1"]))
    _layout(fig, title, "step", "train loss")
    fig.update_layout(yaxis2=dict(title="dev score", overlaying="y", side="right",
                                  range=[0, 1.05], showgrid=False))
    return fig


def score_spread(values: Mapping[str, list[float]], title: str = "Accuracy spread",
                 y_title: str = "accuracy") -> go.Figure:
    """Box plot with every point shown: how much a score varies per template or variant
    (e.g. over few-shot seeds or demo orders)."""
    fig = go.Figure()
    for i, (name, vals) in enumerate(values.items()):
        fig.add_box(y=list(vals), name=name, boxpoints="all", jitter=0.3, pointpos=0,
                    marker_color=PALETTE[i % len(PALETTE)], showlegend=False)
    _layout(fig, title, "template", y_title)
    return fig


def leaderboard_ci(rows: Sequence[Mapping], title: str = "Accuracy with 95% CI") -> go.Figure:
    """Horizontal bars of accuracy per template with asymmetric CI error bars, best on top.

    Each row needs "name", "accuracy", "ci_low", "ci_high" (fractions); an optional
    "majority_baseline" draws a dashed reference line.
    """
    rows = sorted(rows, key=lambda r: r["accuracy"])  # plotly draws the first bar at the bottom
    names = [str(r["name"]) for r in rows]
    acc = [float(r["accuracy"]) for r in rows]
    fig = go.Figure(go.Bar(
        x=acc, y=names, orientation="h", marker_color=PALETTE[0],
        error_x=dict(type="data", symmetric=False,
                     array=[float(r["ci_high"]) - a for r, a in zip(rows, acc)],
                     arrayminus=[a - float(r["ci_low"]) for r, a in zip(rows, acc)]),
        text=[f"{a:.1%}" for a in acc], textposition="inside",
        hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    base = next((r.get("majority_baseline") for r in rows if r.get("majority_baseline") is not None), None)
    if base is not None:
        fig.add_vline(x=float(base), line_dash="dash", line_color="gray",
                      annotation_text="majority baseline", annotation_position="top")
    _layout(fig, title, "accuracy", "template")
    fig.update_xaxes(range=[0, 1.05])
    fig.update_yaxes(type="category")
    return fig


def search_progress(curve: Sequence[Mapping], history: Sequence[Mapping] = (), start: float | None = None,
                    title: str | None = None, what: str = "accuracy") -> go.Figure:
    """Best-so-far dev accuracy (on all dev rows) against model tokens spent, with every scoring
    of a candidate as a dot (its accuracy on the rows of that rung; size grows with the rows).
    `what` names the objective (a generation search's metric, as a mean per-row value in [0, 1])."""
    title = title or f"Prompt search: best dev {what} so far vs budget"
    fig = go.Figure()
    if history:
        ns = [h["n"] for h in history]
        big = max(ns) or 1
        fig.add_scatter(x=[h["tokens"] for h in history], y=[h["accuracy"] for h in history], mode="markers",
                        name="a candidate on n dev rows", marker=dict(color="#BAB0AC", size=[5 + 9 * n / big for n in ns],
                                                                     opacity=0.6),
                        text=[f"{h['stage']} · n={h['n']}" for h in history],
                        hovertemplate="%{text}<br>" + what + " %{y:.3f}<br>%{x:,} tokens<extra></extra>")
    if curve:
        fig.add_scatter(x=[c["tokens"] for c in curve], y=[c["best"] for c in curve], mode="lines+markers",
                        line_shape="hv", name="best so far (all dev rows)", line=dict(color=COLORS["accuracy"], width=3),
                        hovertemplate="best %{y:.3f}<br>%{x:,} tokens<extra></extra>")
    if start is not None:
        fig.add_hline(y=start, line_dash="dot", line_color="#E45756", annotation_text="start",
                      annotation_position="bottom right")
    xs = [h["tokens"] for h in history] + [c["tokens"] for c in curve]
    if xs and max(xs) == min(xs):
        # one point: plotly would zoom to ±0.5 token ("4,615 / 4,615.5 / 4,616"); start at 0 instead
        fig.update_xaxes(range=[0, max(1, max(xs)) * 1.15])
    fig.update_xaxes(tickformat="~s")
    return _layout(fig, title, "model tokens spent", f"dev {what}", yaxis_range=[0, 1.02])


def confidence_sequence(pairs: Sequence[Mapping], margin: float = 0.0,
                        title: str = "Confidence sequence of the accuracy difference") -> go.Figure:
    """The anytime-valid interval of each pair narrowing as rows are scored (a sequential comparison).

    `pairs`: [{"a", "b", "history": [{"n", "lo", "hi", "estimate"}]}] (fractions, B − A), as
    `settings["sequential"]["pairs"]` holds them; a dashed band marks ±margin when one is set.
    """
    fig = go.Figure()
    for k, p in enumerate(pairs):
        h = p.get("history") or []
        if not h:
            continue
        n = [r["n"] for r in h]
        color = PALETTE[k % len(PALETTE)]
        name = f"{p['b']} − {p['a']}"
        fig.add_scatter(x=n + n[::-1], y=[r["hi"] * 100 for r in h] + [r["lo"] * 100 for r in h][::-1],
                        fill="toself", fillcolor=color, opacity=0.2, line=dict(width=0), name=f"{name} interval",
                        hoverinfo="skip")
        fig.add_scatter(x=n, y=[r["estimate"] * 100 for r in h], mode="lines+markers", line=dict(color=color),
                        name=name, hovertemplate="%{x} rows: %{y:+.1f} pts<extra></extra>")
    fig.add_hline(y=0, line_color="gray")
    if margin:
        for y in (-margin * 100, margin * 100):
            fig.add_hline(y=y, line_dash="dash", line_color="gray")
    return _layout(fig, title, "rows scored", "accuracy difference (pts)")
