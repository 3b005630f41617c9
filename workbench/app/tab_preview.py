"""Preview tab: the exact text the model receives for a chosen row (demonstrations and chat
template applied), its tokens and count, a truncation warning, each verbalizer's token ids
(with multi-token / shared-first-token warnings) and the gold label."""
from __future__ import annotations

import gradio as gr

from workbench.app.common import Ctx, UIState, parse_template, state_dataset, user_errors
from workbench.core.config import SPLITS   # the one source of the choice lists

MAX_TOKENS_SHOWN = 1500   # HighlightedText gets slow beyond this; the count is always exact
PREVIEW_SECONDS = 10.0    # every render of one preview request together (docs/SECURITY.md)


def _session(model: str | None):
    """The loaded model when it is this one (a running job may hold it: Preview only tokenizes),
    else this model loaded, which is refused while a job holds another (ModelBusy)."""
    from workbench.jobs import service

    return service.interactive((model or "").strip() or "default")


def preview(state: UIState, template_yaml: str, split: str, position: float, shots: float, seed: float,
            model: str = "default"):
    """Render one row as the model sees it. Returns (prompt text, token summary markdown, tokens
    as [(token, tag)], verbalizer table, warnings markdown, gold markdown)."""
    from workbench.app.isolate import isolated

    with user_errors("Preview"):
        t = parse_template(template_yaml)
        ds = state_dataset(state)
        s = _session(model)
        # the renders run in a child with hard limits, killed at the deadline (app/isolate.py)
        return isolated(_render_preview, t, ds, s, state.split_seed, split, position, shots, seed,
                        seconds=PREVIEW_SECONDS)


def _render_preview(t, ds, s, split_seed, split, position, shots, seed):
    import pandas as pd

    from workbench.core.render import limits as render_limits
    from workbench.core.spec import resolve_eval
    from workbench.jobs.inference import build_prompts, eval_rows

    with render_limits(seconds=PREVIEW_SECONDS):
        # the settings rule every door uses (workbench.core.spec): what is unset takes the template's default
        cfg = resolve_eval({"shots": None if shots is None else int(shots), "seed": None if seed is None else int(seed),
                            "split": split or "test", "split_seed": split_seed}, t)
        rows, pool = eval_rows(ds, cfg)
        pos = int(position or 0)
        if not 0 <= pos < len(rows):
            raise gr.Error(f"Row {pos} is outside the {cfg.split} split (0–{len(rows) - 1}).",
                           title="Preview", print_exception=False)
        row_df = rows.iloc[[pos]]
        text = build_prompts(t, row_df, pool, cfg, s)[0]
        row = row_df.iloc[0]
        tok = s.scoring_tokenizer()     # the very tokenizer scoring uses (no transformers load on the fast path)
        ids = s.encode(text)
        warnings = []
        # Tokens, alternately tagged so neighbouring tokens are told apart by colour.
        shown = ids[:MAX_TOKENS_SHOWN]
        tokens = [(tok.decode([i]), "a" if n % 2 == 0 else "b") for n, i in enumerate(shown)]
        if len(ids) > MAX_TOKENS_SHOWN:
            tokens.append((f" … {len(ids) - MAX_TOKENS_SHOWN} more tokens", None))
        vrows = []
        longest = 0
        if t.task == "classification":
            from workbench.core.verbalizers import verbalizer_report

            entries, vwarn = verbalizer_report(t.choices_for(row),
                                               lambda w: s.encode_pair(text, t.target_delimiter + w)[1],
                                               lambda ids: tok.decode(ids))
            warnings += [f"⚠ {w}." for w in vwarn]
            for e in entries:
                longest = max(longest, len(e.ids))
                vrows.append({"label": e.label, "verbalizer": e.word, "continuation": repr(t.target_delimiter + e.word),
                              "token ids": str(e.ids), "tokens": " · ".join(repr(x) for x in e.tokens),
                              "n": len(e.ids), "note": e.note})
        else:
            longest = t.generation.max_new_tokens
        window = s.max_length
        if len(ids) + longest > window:
            warnings.insert(0, f"⚠ **Truncated:** the prompt is {len(ids)} tokens and the model's window is {window}; "
                               f"the first {len(ids) + longest - window} tokens are cut (left truncation).")
        summary = (f"**{len(ids)} tokens** (window {window}) · {len(text)} characters · "
                   f"{cfg.shots}-shot, seed {cfg.seed} · chat template {'on' if t.chat else 'off'} · "
                   f"row {row_df.index[0]} of the dataset")
        gold = t.gold(row)
        if t.task == "classification":
            words = dict(t.choices_for(row)).get(gold, [])
            gold_md = f"**Gold label:** `{gold}`" + (f" → verbalizer {words[0]!r}" if words else " (no verbalizer!)")
        else:
            gold_md = f"**Gold answer:** `{gold}`"
        vdf = pd.DataFrame(vrows, columns=["label", "verbalizer", "token ids", "n", "tokens", "note", "continuation"])
        warn_md = "\n\n".join(warnings) if warnings else "✓ No tokenization warnings."
        return text, summary, tokens, vdf, warn_md, gold_md


def build(ctx: Ctx) -> None:
    from workbench.app import badge

    with gr.Tab("Preview", id="preview", elem_id="tab-preview"):
        badge.add(ctx, "preview")
        with gr.Row():
            split = gr.Dropdown(SPLITS, value="test", label="Split", scale=1)
            position = gr.Number(0, label="Row in split", precision=0, minimum=0, scale=1)
            shots = gr.Number(0, label="Shots", precision=0, minimum=0, scale=1)
            seed = gr.Number(0, label="Demo seed", precision=0, scale=1)
            btn = gr.Button("Preview", variant="primary", scale=0, min_width=160, size="lg")
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Exact model input", lines=12, max_lines=30, interactive=False,
                                  buttons=["copy"], elem_id="preview-text",
                                  placeholder="Press Preview to render the chosen row with the editor's template.")
                summary = gr.Markdown("")
            with gr.Column(scale=2):
                gold = gr.Markdown("", elem_id="preview-gold")
                warn = gr.Markdown("")
                verbal = gr.Dataframe(headers=["label", "verbalizer", "token ids", "n", "tokens", "note"],
                                      label="Verbalizers and their tokens", interactive=False, wrap=True,
                                      max_height=320)
        tokens = gr.HighlightedText(label="Tokens", color_map={"a": "#dbeafe", "b": "#fde68a"}, show_legend=False,
                                    show_inline_category=False, show_whitespaces=True, combine_adjacent=False, elem_id="preview-tokens")
        # the judge in use (Templates -> Judge) on this row: its exact prompt and tokens
        judge_md = gr.Markdown("", elem_id="preview-judge")
    inputs = [ctx.state, ctx.editor, split, position, shots, seed, ctx.model_name]
    outputs = [text, summary, tokens, verbal, warn, gold]
    from workbench.app.model_bar import model_status

    from workbench.app.judge_panel import preview_judge

    btn.click(preview, inputs, outputs, api_name="preview").then(
        model_status, None, ctx.model_info, api_name="model_status_after_preview", api_visibility="private").then(
        preview_judge, [ctx.state, ctx.editor, split, position], judge_md, api_name="preview_judge")
    position.submit(preview, inputs, outputs, api_name="preview_submit", api_visibility="private")
