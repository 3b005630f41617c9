"""What a bundle will hold, said before it is written, and whether a trained adapter beat its
base model (issue 28, items 6 and 7).

- `adapter_verdict(run_dir)`: the paired test of base vs base + adapter on the run's test rows
  (the same McNemar / bootstrap as Compare, jobs.compare.compare_results), for the Train tab
  and the Export tab.
- `bundle_contents(...)`: the file list of the bundle the Export form would write, with the
  raw rows only when the user opted in (off by default for one's own data).
"""
from __future__ import annotations

import html
from pathlib import Path


def adapter_verdict(run_dir: str | Path | None) -> dict | None:
    """{"text", "significant", "delta_acc", "p", "base_accuracy", "adapter_accuracy", "better"}
    of a finished training run (both test results saved), else None."""
    from workbench.jobs.compare import compare_results

    if not run_dir:
        return None
    p = Path(run_dir)
    a, b = p / "adapter_results.json", p / "base_results.json"
    if not (a.exists() and b.exists()):
        return None
    import json

    base, adapter = json.loads(b.read_text()), json.loads(a.read_text())
    try:
        cmp = compare_results([("base model", base), ("base + adapter", adapter)], baseline="base model",
                              n_boot=1000)
    except Exception:  # noqa: BLE001 - results on different rows (an old run): no paired verdict
        return None
    v = cmp.verdicts[0]
    acc = {r["name"]: r["accuracy"] for r in cmp.leaderboard}
    return {"text": v["text"], "significant": bool(v["significant"]), "delta_acc": v["delta_acc"],
            "p": v.get("p_used", v.get("p_mcnemar")), "base_accuracy": acc["base model"],
            "adapter_accuracy": acc["base + adapter"], "n": cmp.n,
            "better": bool(v["significant"] and v["delta_acc"] > 0)}


def verdict_markdown(v: dict | None) -> str:
    if not v:
        return ""
    mark = ("<span class='wb-mark sig'>significant</span>" if v["significant"]
            else "<span class='wb-mark ns'>not significant</span>")
    line = (f"**Paired verdict** (same {v['n']} test rows): {mark} {v['text']} "
            f"(base {v['base_accuracy']:.1%} → adapter {v['adapter_accuracy']:.1%}, p={v['p']:.3g})")
    if not v["better"]:
        line += ("\n\n⚠ **The adapter did not beat the base model** on these rows"
                 + (" (it scored lower)" if v["delta_acc"] < 0 else "") + ".")
    return line


def default_include_rows(data_spec: str | None) -> bool:
    """Raw rows go into a bundle by default only for the built-in demo datasets; one's own
    data (an upload, a file, a hub set) needs an explicit opt-in."""
    from workbench.storage.data_builtins import builtin_datasets

    return bool(data_spec) and str(data_spec) in {b["name"] for b in builtin_datasets()}


def bundle_contents(source: str, train_run: str | None, merge: bool, include_rows: bool, shots: float | None,
                    data_name: str | None = None, notes: int = 0) -> str:
    """Markdown: the files the bundle will hold, and warnings, before anything is written.
    `notes`: how many rows of the data carry a tag or comment (the export writes them to
    notes.json, jobs/export.py `_write_notes`), so the list names that file too."""
    files = [("template.yaml", "the template, stamped with its content hash"),
             ("eval_config.json", "the scoring settings"),
             ("metrics.json", "accuracy and F1 with confidence intervals, the data's fingerprint"),
             ("per_class.svg", "per-class F1"),
             ("predictions.jsonl", "per test row: index, gold label, prediction, per-choice scores (no text)"),
             ("promptsource.yaml", "the template for PromptSource"),
             ("README.md", "the model card"), ("manifest.json", "checksums of every file")]
    if include_rows:
        files.insert(5, ("data/test.jsonl", f"**the raw test rows of {html.escape(data_name or 'your data')}** "
                                            "(the template's columns)"))
        if shots:
            files.insert(6, ("data/fewshot.jsonl, data/pool.jsonl", "**raw rows** used as demonstrations"))
        files.append(("lm_eval_task.yaml", "an lm-eval task over data/test.jsonl"))
    if notes:
        # the user's own words about their rows: said, like the raw rows, before writing
        files.insert(-1, ("notes.json", f"your tags and comments on {notes} row{'s' if notes != 1 else ''} "
                                        "of this data (from the results matrix)"))
    if source == "training run":
        files.insert(1, ("model/" if merge else "adapter/", "the merged model" if merge else "the LoRA adapter"))
        files.append(("train_config.json", "the training settings"))
    lines = ["**The bundle will hold:**", ""] + [f"- `{f}`: {what}" for f, what in files]
    if not include_rows:
        lines += ["", "No raw rows: the data is named by its fingerprint, and the metrics are kept. "
                      "lm_eval_task.yaml and the round-trip check need the rows (tick *Include the raw rows*)."]
    if source == "training run":
        v = adapter_verdict(train_run)
        if v and not v["better"]:
            lines += ["", verdict_markdown(v)]
    return "\n".join(lines)
