"""The bundle's model card (README.md, Hugging Face style) and its per-class bar chart (SVG).

    text = model_card(manifest, metrics, template, config, train_config)
    svg = per_class_svg(metrics["test"]["per_class"])

Pure functions of what the exporter measured; `workbench.jobs.export` writes their output.
"""
from __future__ import annotations


def per_class_svg(per_class: dict, title: str = "Per-class precision, recall and F1") -> str:
    """A grouped bar chart as plain SVG (kaleido/matplotlib are not dependencies)."""
    import html

    labels = list(per_class)
    series = [("precision", "#6366f1"), ("recall", "#22c55e"), ("f1", "#f59e0b")]
    w_group, bar = 66, 18
    left, top, h = 48, 40, 200
    width = left + max(1, len(labels)) * w_group + 20
    height = top + h + 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for i, (s, color) in enumerate(series):
        out.append(f'<rect x="{left + i * 80}" y="26" width="10" height="10" fill="{color}"/>'
                   f'<text x="{left + i * 80 + 14}" y="35">{s}</text>')
    for t in range(0, 11, 2):
        y = top + h - t / 10 * h
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t / 10:.1f}</text>')
    for j, lab in enumerate(labels):
        x0 = left + j * w_group + 6
        for i, (s, color) in enumerate(series):
            v = max(0.0, min(1.0, float(per_class[lab].get(s, 0.0))))
            out.append(f'<rect x="{x0 + i * bar}" y="{top + h - v * h:.1f}" width="{bar - 2}" '
                       f'height="{v * h:.1f}" fill="{color}"><title>{html.escape(lab)} {s} {v:.3f}</title></rect>')
        out.append(f'<text x="{x0 + 1.5 * bar}" y="{top + h + 16}" text-anchor="middle">'
                   f'{html.escape(str(lab)[:10])}</text>')
    out.append("</svg>")
    return "\n".join(out)




def _fmt_ci(d: dict) -> str:
    if "ci_low" not in d:
        return f"{d['value']:.3f}"
    return f"{d['value']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"


def training_section(train_config: dict) -> list[str]:
    """The card's "Training" section; a run that did not finish (interrupted, cancelled, failed)
    and was exported anyway says so first."""
    lines = ["## Training", ""]
    rs = train_config.get("run_state") or {}
    if rs.get("state") and rs["state"] != "done":
        lines += [f"> **Warning: this training run did not finish: it was {rs['state']} at step {rs.get('step')} of "
                  f"{rs.get('total_steps')}** ({rs.get('stop_reason') or 'no reason recorded'}). The adapter is the "
                  "best one saved before that" + (", exported with --force (force=True)." if rs.get("forced") else ".")
                  + " Its numbers below were measured on that adapter.", ""]
    keys = [k for k in ("mode", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "lr", "epochs",
                        "max_steps", "batch_size", "grad_accum", "seed", "shots_per_class", "step") if k in train_config]
    lines += ["| setting | value |", "|---|---|"]
    lines += [f"| {k} | `{train_config[k]}` |" for k in keys]
    lines += ["", "The full configuration is in `train_config.json`.", ""]
    return lines


def model_card(manifest: dict, metrics: dict, template, config, train_config: dict | None) -> str:
    base = manifest["base_model"]
    has_adapter = bool(manifest["adapter"])
    tags = ["prompt-workbench", "text-classification"] + (["lora", "peft"] if has_adapter or manifest["merged"] else [])
    fm = ["---"]
    if base.get("hub_id"):
        fm.append(f"base_model: {base['hub_id']}")
    fm.append("library_name: " + ("peft" if has_adapter else "transformers"))
    fm.append("pipeline_tag: text-classification")
    fm.append("tags:\n" + "\n".join(f"- {t}" for t in tags))
    fm.append("metrics:\n- accuracy\n- f1")
    fm.append("---")
    t = metrics["test"]
    conf = int(round(t["confidence"] * 100))
    data = manifest["data"]
    what = ("the LoRA adapter trained on it" if has_adapter else
            "the base model with the adapter merged into its weights (`model/`)" if manifest["merged"] else
            "no adapter (the base model scores the template zero/few-shot)")
    lines = fm + ["", f"# {manifest['name']}", "",
                  f"A prompt-classification bundle made with Prompt Workbench: the template **{template.name}** "
                  f"(content hash `{template.content_hash()[:12]}`) for **{base['hub_id'] or base['name']}**, and "
                  f"{what}.", "",
                  "## Labels", "", "| label | verbalizers |", "|---|---|"]
    for lab, words in template.answer_choices.items():
        lines.append(f"| {lab} | {', '.join(f'`{w}`' for w in words)} |")
    lines += ["", "## Data", "",
              f"- dataset: **{data['name']}** (source `{data.get('source')}`), fingerprint `{data['fingerprint']}`",
              f"- evaluated on the **{data['split']}** split (split seed {data['split_seed']}), "
              f"{data['n_test']} examples; columns used: {', '.join(f'`{c}`' for c in data['columns'])}",
              f"- scoring: {config.shots}-shot (seed {config.seed}, {config.sampling}), method `{config.method}`, "
              f"calibration `{config.calibration}`", ""]
    if train_config:
        lines += training_section(train_config)
    lines += ["## Results", "", f"Test split, {t['n']} examples, {conf}% confidence intervals "
              "(accuracy: Wilson; macro-F1: percentile bootstrap).", "",
              "| model | accuracy | macro-F1 | majority baseline |", "|---|---|---|---|"]
    if "base" in metrics:
        b = metrics["base"]
        lines.append(f"| base | {_fmt_ci(b['accuracy'])} | {_fmt_ci(b['macro_f1'])} | {b['majority_baseline']:.3f} |")
    lines.append(f"| {'base + adapter' if has_adapter or manifest['merged'] else 'base'} | {_fmt_ci(t['accuracy'])} | "
                 f"{_fmt_ci(t['macro_f1'])} | {t['majority_baseline']:.3f} |")
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, v in t["per_class"].items():
        lines.append(f"| {lab} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    lines += ["", "![Per-class precision, recall and F1](per_class.svg)", ""]
    cmp = metrics.get("comparison")
    if cmp:
        lines += ["### Comparison", "", f"Marked the winner of comparison `{cmp['run_id']}` ({cmp.get('n')} examples):", ""]
        lines += [f"- {v}" for v in cmp["verdicts"] if v] or ["- (no verdict text stored)"]
        lines.append("")
    lines += ["## Intended use", "",
              f"Classifying texts like those of **{data['name']}** into the labels above, by scoring each label's "
              "verbalizer after the prompt. Check it on a sample of your own data before relying on it.", "",
              "## Limitations", "",
              "- The numbers hold for this data split; other sources, lengths or label mixes can score lower.",
              f"- With {t['n']} test examples the intervals above are the honest uncertainty; differences inside "
              "them are not evidence.",
              "- A small language model scores these prompts; it can be confidently wrong and carries the biases "
              "of its training data.",
              "- Inputs longer than the model's context are an error, never cut silently."]
    for n in manifest["lm_eval"]["notes"]:
        lines.append(f"- lm-eval: {n}.")
    lines += ["", "## How to load", "", "```python", "from workbench import load_bundle", "",
              "clf = load_bundle(\"path/to/bundle\")   # checks checksums, base model and tokenizer",
              "clf.predict([\"some text\", \"another text\"])   # -> labels",
              "clf.predict_frame(df)                 # -> df + pred + score_<label> columns", "```", "",
              "```bash", "workbench predict --bundle path/to/bundle --input new.csv --out preds.csv", "```", ""]
    base_arg = f"pretrained={base['hub_id'] or base['name']}"
    if manifest["merged"]:
        base_arg = "pretrained=model"
        lines += ["Plain transformers: `AutoModelForCausalLM.from_pretrained(\"model\")`; render "
                  "`template.yaml` yourself.", ""]
    elif has_adapter:
        base_arg += ",peft=adapter"
        lines += ["Plain peft: `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), \"adapter\")`.", ""]
    if manifest["lm_eval"]["task"]:
        lines += ["lm-evaluation-harness, from inside the bundle folder (the data paths are relative):", "", "```bash",
                  f"lm_eval --model hf --model_args {base_arg},dtype=float32 --tasks {manifest['lm_eval']['task']} "
                  "--include_path . --log_samples --output_path lm_eval_out", "```", ""]
    lines += ["`promptsource.yaml` holds the template in PromptSource's format; `workbench import` reads the bundle, "
              "that file or `lm_eval_task.yaml` back into the template library.", "",
              f"Built with prompt-workbench {manifest['versions'].get('prompt-workbench', '?')}, transformers "
              f"{manifest['versions'].get('transformers', '?')}, peft {manifest['versions'].get('peft', '?')}; "
              "`manifest.json` lists every file's sha256.", ""]
    return "\n".join(lines)
