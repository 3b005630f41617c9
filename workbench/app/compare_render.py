"""How the Compare tab shows a comparison: the verdict text, the leaderboard, the disagreements,
the confusion matrices and the job's progress line (pure rendering: a ComparisonResult in, tables,
markdown and figures out). The Runs tab shows a stored comparison with the same verdict text.
"""
from __future__ import annotations

import html

import gradio as gr

from workbench.app.common import empty_figure, job_progress_html

ALL_CLASSES = "all classes"


def progress_html(st: dict | None) -> str:
    meta = (st or {}).get("meta") or {}
    return job_progress_html(st, what=f"{meta.get('study', '')} {meta.get('template', '')} on {meta.get('data', '')}".strip())


def pct(x) -> str:
    """A fraction as percent with one decimal; '–' for none."""
    return "–" if x is None else f"{x * 100:.1f}"


def leaderboard_frame(res):
    """The leaderboard as a table: rank, accuracy and macro-F1 with CIs, Δ and p against the reference."""
    import pandas as pd

    rows = []
    for r in res.leaderboard:
        rows.append({"#": r["rank"], "template": r["name"] + (" (reference)" if r["is_reference"] else ""),
                     "accuracy %": pct(r["accuracy"]), "95% CI": f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]",
                     "macro-F1 %": pct(r["macro_f1"]),
                     "F1 95% CI": "–" if r["macro_f1"] is None else f"[{pct(r['f1_ci_low'])}, {pct(r['f1_ci_high'])}]",
                     "Δacc pts": "ref" if r["is_reference"] else f"{r['delta_acc'] * 100:+.1f}",
                     "p" + (" (Holm)" if res.settings.get("holm") else ""): "" if r["p"] is None else f"{r['p']:.4f}"})
    return pd.DataFrame(rows)


def verdict_markdown(res) -> str:
    """The verdicts as markdown: what was compared on which rows, each verdict marked significant or
    not, every pair of a grid, the stopping rule, generation metrics and judges, collapse flags."""
    inp = res.inputs or {}
    demos = (f"{inp.get('shots')} {inp.get('sampling')} demos (seed {inp.get('seed')}, rows {inp.get('demo_indices')})"
             if inp.get("shots") else "zero-shot")
    grid = (res.settings or {}).get("grid")
    what = (f"{len(res.names)} columns ({len(grid['models'])} models × {len(grid['templates'])} "
            f"template{'s' if len(grid['templates']) > 1 else ''})" if grid else f"{len(res.names)} templates")
    head = (f"**{what} on the same {res.n} examples** · rows `{inp.get('row_indices_hash')}` · "
            f"{demos} · reference **{res.reference}** "
            f"({'chosen baseline' if res.reference_mode == 'baseline' else 'best accuracy'})")
    lines = [head, ""]
    for v in res.verdicts:
        # Text marks, not emoji: ✅ ➖ 🏆 render as boxes where no emoji font is installed.
        mark = ("<span class='wb-mark sig'>significant</span>" if v["significant"]
                else "<span class='wb-mark ns'>not significant</span>")
        lines.append(f"- {mark} {v['text']}")
    pairs = (res.settings or {}).get("pairs") or []
    if pairs:
        # a models x templates grid: every two columns, not only each against the reference
        lines += ["", f"**Every pair of columns** (McNemar{', Holm over ' + str(len(pairs)) + ' pairs' if len(pairs) > 1 else ''}):"]
        for v in pairs:
            mark = ("<span class='wb-mark sig'>significant</span>" if v["significant"]
                    else "<span class='wb-mark ns'>not significant</span>")
            lines.append(f"- {mark} **{v['a']}** vs **{v['b']}**: Δacc {v['delta_acc'] * 100:+.1f} pts, "
                         f"p={v['p_used']:.3g} ({v['only_a']} right only for the first, {v['only_b']} only for the second)")
    seq = (res.settings or {}).get("sequential")
    if seq:
        from workbench.jobs.sequential import format_sequential

        lines += ["", "**Stopping early** (anytime-valid):", "```", format_sequential(seq), "```"]
    g = getattr(res, "generation", None) or {}
    if g.get("metric_verdicts") or g.get("judge_verdicts"):
        # generation: one paired verdict per reference metric and per judge, each naming its test
        lines += ["", "**Per metric and judge** (each line names its test):"]
        for v in g.get("metric_verdicts", []) + g.get("judge_verdicts", []):
            mark = ("<span class='wb-mark sig'>significant</span>" if v["significant"]
                    else "<span class='wb-mark ns'>not significant</span>")
            lines.append(f"- {mark} <span class='wb-gen-verdict'>{html.escape(v['text'])}</span>")
        j = g.get("judge") or {}
        for nm, sm in (j.get("summaries") or {}).items():
            lb = sm.get("length_bias") or {}
            lines.append(f"- judge check, {html.escape(nm)}: mean score {sm['mean']:.3f}, length bias "
                         f"{lb.get('value', float('nan')):+.2f}" + (f" · **{html.escape(sm['flat'])}**" if sm.get("flat") else ""))
    from workbench.core.collapse import one_class_text

    flags = [one_class_text(res.metrics.get(nm), nm) for nm in res.names]   # issue 28, item 4
    if any(flags):
        base = next((m.get("majority_baseline") for m in res.metrics.values() if "majority_baseline" in m), None)
        lines += [""] + [f"- {f}" for f in flags if f]
        if base is not None:
            lines.append(f"- majority baseline on these rows: {base:.1%}")
    if res.winner:
        lines += ["", f"<span class='wb-mark win'>winner</span> **{res.winner}**"]
    method = ("betting confidence sequences (Waudby-Smith & Ramdas 2024), valid at every look" if seq else
              "exact McNemar on the discordant pairs with its exact interval; paired bootstrap "
              f"({res.settings.get('n_boot')} resamples) for Δmacro-F1"
              + ("; p and interval Holm-adjusted for the number of comparisons" if res.settings.get("holm") else ""))
    lines += ["", f"<small>run `{res.run_id}` · {method}</small>"]
    return "\n".join(lines)


def disagreements_frame(res, label: str | None = None):
    """The examples the columns predict differently (optionally involving class `label`)."""
    import pandas as pd

    label = None if label in (None, "", ALL_CLASSES) else label
    rows = []
    for ex in res.disagreements(label=label):
        d = {"row": ex["index"], "gold": ex["gold"]}
        if ex.get("text") is not None:
            d["text"] = ex["text"]
        for nm in res.names:
            ok = "✓" if ex["correct"][nm] else "✗"
            d[nm] = f"{ok} {ex['preds'][nm]}"
            sc = ex["scores"].get(nm) or {}
            if sc:
                d[f"{nm} · scores"] = ", ".join(f"{k} {float(v):.2f}" for k, v in sc.items())
        rows.append(d)
    if not rows:
        return pd.DataFrame(columns=["row", "gold"] + list(res.names))
    return pd.DataFrame(rows)


def disagreements_frame_empty():
    """The disagreements table with nothing in it."""
    import pandas as pd

    return pd.DataFrame(columns=["row", "gold"])


def confusion(res, name: str | None):
    """The confusion matrix of column `name` (an empty figure when there is none)."""
    from workbench.core import plots

    if not name or name not in res.metrics or "confusion" not in res.metrics[name]:
        return empty_figure("no confusion matrix")
    return plots.confusion_heatmap(res.metrics[name], title=f"Confusion: {name}")


def leader_pairs(pairs: list[dict], leader: str) -> list[dict]:
    """With more than two columns (a models x templates grid), the plot shows each column against the
    leader, as the rule drops them, oriented column − leader; two columns keep their one pair as is."""
    if len(pairs) <= 1:
        return pairs
    out = []
    for p in pairs:
        if leader not in (p["a"], p["b"]):
            continue
        if p["b"] == leader:    # measured leader − column: flip it to column − leader
            p = {**p, "a": p["b"], "b": p["a"], "history": [
                {**h, "lo": -h["hi"], "hi": -h["lo"], "estimate": -h["estimate"]} for h in p.get("history") or []]}
        out.append(p)
    return out


def cleared_views(message: str = "*Comparing… the verdict appears here when the job ends.*"):
    """The comparison views with nothing from an earlier comparison (and the winner line)."""
    import pandas as pd

    fig = empty_figure("running…")
    return ("", message, pd.DataFrame(columns=["#", "template", "accuracy %"]), fig, fig, gr.update(value=None), fig,
            gr.update(value=None), fig, ALL_CLASSES, disagreements_frame_empty(), gr.update(value=None), "")
