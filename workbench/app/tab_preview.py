"""Preview tab: the exact text the model receives for a chosen row (demonstrations and chat
template applied), its tokens and count, a truncation warning, each verbalizer's token ids
(with multi-token / shared-first-token warnings) and the gold label."""
from __future__ import annotations

import gradio as gr

from workbench.app.common import MODEL_QUEUE, Ctx, UIState, parse_template, state_dataset, user_errors

MAX_TOKENS_SHOWN = 1500   # HighlightedText gets slow beyond this; the count is always exact
SPLITS = ["test", "dev", "train", "all"]


def _session(model: str | None):
    from workbench.engine.session import get_session
    from workbench.app.model_bar import current_session

    s = current_session()
    if s is not None and (not model or s.config.model == model):
        return s
    return get_session((model or "").strip() or "default")


def preview(state: UIState, template_yaml: str, split: str, position: float, shots: float, seed: float,
            model: str = "default"):
    """Render one row as the model sees it. Returns (prompt text, token summary markdown, tokens
    as [(token, tag)], verbalizer table, warnings markdown, gold markdown)."""
    import pandas as pd

    from workbench.jobs.inference import EvalConfig, build_prompts, eval_rows

    with user_errors("Preview"):
        t = parse_template(template_yaml)
        ds = state_dataset(state)
        cfg = EvalConfig(shots=int(shots or 0), seed=int(seed or 0), split=split or "test",
                         split_seed=state.split_seed, per_class=t.fewshot.per_class, balanced=t.fewshot.balanced)
        rows, pool = eval_rows(ds, cfg)
        pos = int(position or 0)
        if not 0 <= pos < len(rows):
            raise gr.Error(f"Row {pos} is outside the {cfg.split} split (0–{len(rows) - 1}).",
                           title="Preview", print_exception=False)
        row_df = rows.iloc[[pos]]
        s = _session(model)
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
        vrows, firsts = [], {}
        longest = 0
        if t.task == "classification":
            for label, words in t.choices_for(row):
                for w in words:
                    _, cont = s.encode_pair(text, t.target_delimiter + w)
                    longest = max(longest, len(cont))
                    note = "multi-token" if len(cont) > 1 else ""
                    if cont and cont[0] in firsts and firsts[cont[0]][0] != label:
                        other = firsts[cont[0]]
                        note = (note + "; " if note else "") + f"shares first token with {other[1]!r} ({other[0]})"
                        warnings.append(f"⚠ verbalizers {other[1]!r} ({other[0]}) and {w!r} ({label}) start with the same "
                                        "token: their scores differ only after it.")
                    if cont:
                        firsts.setdefault(cont[0], (label, w))
                    if len(cont) > 1:
                        warnings.append(f"⚠ verbalizer {w!r} is {len(cont)} tokens ({[tok.decode([i]) for i in cont]}); "
                                        "single-token verbalizers compare more fairly and score in one pass.")
                    vrows.append({"label": label, "verbalizer": w, "continuation": repr(t.target_delimiter + w),
                                  "token ids": str(cont), "tokens": " · ".join(repr(tok.decode([i])) for i in cont),
                                  "n": len(cont), "note": note})
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
    inputs = [ctx.state, ctx.editor, split, position, shots, seed, ctx.model_name]
    outputs = [text, summary, tokens, verbal, warn, gold]
    from workbench.app.model_bar import model_status

    btn.click(preview, inputs, outputs, api_name="preview", concurrency_id=MODEL_QUEUE, concurrency_limit=1).then(
        model_status, None, ctx.model_info, api_name="model_status_after_preview", api_visibility="private")
    position.submit(preview, inputs, outputs, api_name="preview_submit", api_visibility="private",
                    concurrency_id=MODEL_QUEUE, concurrency_limit=1)
