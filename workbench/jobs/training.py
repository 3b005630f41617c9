"""Prompt-based LoRA fine-tuning of a template: validation and the training loop.

    cfg = TrainConfig(shots_per_class=16, max_steps=60, seed=1)
    plan = prepare("default", template, dataset, cfg)            # validates data, lengths, modules
    run_training(plan, progress=...)                             # the loop; writes the run folder
    train("default", template, dataset, cfg, run_dir)            # both, blocking (CLI, tests)
    # in the background with a UI polling the run folder: workbench.jobs.train_job.TrainJob

What is trained. Mode "lm" (default, LM-BFF, Gao et al. 2021): each training row becomes the
rendered prompt followed by `target_delimiter + first verbalizer of its gold class`, tokenized
exactly as scoring tokenizes it; the loss is the cross-entropy of the answer tokens only (prompt
labels are -100), so training raises the very log-probability `inference.classify` compares.
Mode "head" (for comparison): a linear classifier on the hidden state of the prompt's last token,
trained together with the LoRA weights.

The run folder a second process follows (log.jsonl, CANCEL, adapter/, result.json, and how a
killed run reads as interrupted) is `workbench.jobs.run_folder`; the background job is
`workbench.jobs.train_job.TrainJob`. This module is the training itself: validation (`prepare`)
and the loop (`run_training`).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from workbench.core.config import MODES, SELECT_METRICS, TrainConfig  # noqa: F401 (re-exported)
from workbench.errors import Cancelled
from workbench.jobs.run_folder import (  # noqa: F401 (re-exported: the run-folder protocol)
    ADAPTER_NAME, CANCEL_NAME, FINISHED_STATES, INTERRUPTED_NAME, LOG_NAME, RESULT_NAME, STALE_AFTER_S, ProgressFn,
    RunLog, list_runs, owner_alive, owner_fields, read_log, read_result, read_status, request_cancel,
    save_adapter_atomic)
from workbench.jobs.run_folder import _write_json_atomic

from workbench.jobs.train_prepare import (  # noqa: E402,F401 (re-exported: validation and the plan)
    TrainPlan, check_train_model, default_target_modules, linear_module_names, prepare, resolve_target_modules,
    session_for_model)


# ---------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    status: str                 # done | cancelled
    stop_reason: str            # max_steps | early_stop | cancelled
    run_dir: str
    adapter_dir: str | None
    steps: int
    best_step: int | None
    best_metric: float | None
    base_metrics: dict | None = None
    adapter_metrics: dict | None = None
    registry_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    micro_per_epoch = math.ceil(n_train / cfg.batch_size)
    return max(1, math.ceil(micro_per_epoch * cfg.epochs / cfg.grad_accum))


def loss_on_batch(model, batch: dict, mode: str, head=None):
    """Mean cross-entropy of one micro-batch.

    lm: on the answer tokens only; the LM head runs only at the positions that predict them
        (hidden [N, H] @ W^T instead of [B, L, H] @ W^T: most of a 49k-vocab head's cost saved).
    head: a linear classifier on the hidden state of the last prompt token."""
    import torch
    import torch.nn.functional as F

    from workbench.engine.local_engines import split_decoder_head
    from workbench.core.train_data import IGNORE

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, lm_head = split_decoder_head(lm)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    if mode == "head":
        hidden = (decoder or lm.model)(input_ids=ids, attention_mask=mask).last_hidden_state   # [B, L, H]
        h = hidden[torch.arange(ids.shape[0], device=ids.device), batch["last"]]               # [B, H]
        return F.cross_entropy(head(h.to(head.weight.dtype)).float(), batch["class_ids"])
    tgt = labels[:, 1:]                              # [B, L-1]: token t+1 is predicted at position t
    sel = tgt != IGNORE
    if decoder is not None:
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state                # [B, L, H]
        logits = lm_head(hidden[:, :-1][sel])                                                 # [N, V]
    else:
        logits = lm(input_ids=ids, attention_mask=mask).logits[:, :-1][sel]                   # [N, V]
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    logits = logits.float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, tgt[sel])


def run_training(plan: TrainPlan, *, progress: ProgressFn | None = None,
                 cancel: Callable[[], bool] | None = None) -> TrainResult:
    """Train, evaluate on dev, keep the best adapter, then compare base vs adapter on test."""
    import torch

    cfg, model, head, run_dir = plan.config, plan.model, plan.head, plan.run_dir
    log = RunLog(run_dir)
    cancel_file = run_dir / CANCEL_NAME

    def cancelled() -> bool:
        return cancel_file.exists() or bool(cancel and cancel())

    def say(done: int, total: int, msg: str) -> None:
        if progress:
            progress(done, total, msg)

    n = len(plan.examples)
    T = total_steps(cfg, n)
    warm = math.ceil(T * cfg.warmup_ratio)
    do_eval = cfg.eval_every > 0 and len(plan.dev_rows) > 0
    log.write("start", **owner_fields(), registry=plan.registry, total_steps=T, n_train=n, n_dev=len(plan.dev_rows), n_test=len(plan.test_rows),
              config=asdict(cfg), model=plan.model_name, identity=plan.identity, template=plan.template.name,
              data=plan.dataset.name, device=plan.device, amp=str(plan.amp_dtype) if plan.amp_dtype else None,
              target_modules=plan.target_modules, labels=plan.labels,
              train_indices=[_plain(i) for i in plan.train_rows.index],
              trainable_params=sum(p.numel() for p in _trainable(model, head)))

    params = list(_trainable(model, head))
    # On CUDA the fused AdamW kernel updates every adapter tensor in one launch per step.
    fused = {"fused": True} if plan.device.startswith("cuda") else {}
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    # Linear warm-up then linear decay to 0 (the schedule of transformers' get_linear_schedule_with_warmup).
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (T - s) / max(1, T - warm)))
    # Data order comes from its own generator, so evaluation or logging never shifts it.
    order = torch.Generator().manual_seed(cfg.seed)
    amp = (torch.autocast("cuda", dtype=plan.amp_dtype) if plan.amp_dtype is not None
           else contextlib.nullcontext())

    best = {"metric": None, "step": None, "state": None}
    bad_evals = 0
    stop_reason = "max_steps"
    train_s = 0.0
    t_start = time.time()

    def micro_batches():
        epoch = 0
        while True:
            perm = torch.randperm(n, generator=order).tolist()
            for i in range(0, n, cfg.batch_size):
                yield epoch + i / n, [plan.examples[j] for j in perm[i:i + cfg.batch_size]]
            epoch += 1

    def evaluate_dev(step: int) -> bool:
        """Dev metrics at `step`; saves the adapter when they are the best so far. True = improved."""
        nonlocal bad_evals
        say(step, T, "evaluating on dev")
        m = _eval_split(plan, plan.dev_rows, cancelled)
        value = m[cfg.select_metric]
        improved = best["metric"] is None or value > best["metric"] + 1e-12
        log.write("eval", step=step, dev_accuracy=m["accuracy"], dev_macro_f1=m["macro_f1"],
                  dev_per_class_f1={k: v["f1"] for k, v in m["per_class"].items()},
                  metric_value=value, best=improved)
        if improved:
            best.update(metric=value, step=step, state=_snapshot(model, head))
            _save(plan, step, log)
            bad_evals = 0
        else:
            bad_evals += 1
        return improved

    status = "done"
    step = 0
    try:
        if do_eval:
            # Step 0 is the base model's dev score: an adapter must beat it to replace the
            # (identity) adapter saved here, and a cancel right away still leaves a valid adapter.
            evaluate_dev(0)
        batches = micro_batches()
        model.train()
        while step < T:
            t0 = time.perf_counter()
            losses = []
            epoch = 0.0
            for _ in range(cfg.grad_accum):
                if cancelled():
                    raise Cancelled()
                epoch, exs = next(batches)
                batch = {k: v.to(plan.device) for k, v in collate(exs, plan.tokenizer.pad_token_id).items()}
                with amp:
                    loss = loss_on_batch(model, batch, cfg.mode, head)
                (loss / cfg.grad_accum).backward()
                losses.append(float(loss.detach()))
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            train_s += time.perf_counter() - t0
            rate = step / train_s
            mean_loss = sum(losses) / len(losses)
            log.write("train", step=step, epoch=round(epoch, 4), loss=mean_loss, lr=lr, steps_per_s=round(rate, 4),
                      eta_s=round((T - step) / rate, 1), elapsed_s=round(time.time() - t_start, 2))
            say(step, T, f"loss {mean_loss:.4f}")
            if do_eval and (step % cfg.eval_every == 0 or step == T):
                model.eval()
                evaluate_dev(step)
                model.train()
                if cfg.patience and bad_evals >= cfg.patience and step < T:
                    stop_reason = "early_stop"
                    break
        model.eval()
        if not do_eval:
            best.update(step=step, state=_snapshot(model, head))
            _save(plan, step, log)
    except (Cancelled, KeyboardInterrupt):   # Ctrl-C in the CLI is a cancel: keep the best adapter
        status, stop_reason = "cancelled", "cancelled"
        model.eval()
    except BaseException as exc:
        log.write("end", status="failed", stop_reason="error", error=f"{type(exc).__name__}: {exc}")
        raise

    result = TrainResult(status=status, stop_reason=stop_reason, run_dir=str(run_dir),
                         adapter_dir=str(run_dir / ADAPTER_NAME) if (run_dir / ADAPTER_NAME).exists() else None,
                         steps=step, best_step=best["step"], best_metric=best["metric"])
    summary = _summary(plan, result, train_s, t_start)
    try:
        if status == "done" and cfg.final_eval and len(plan.test_rows) and best["state"] is not None:
            log.write("phase", phase="final_eval")
            say(step, T, "comparing base and adapter on test")
            _restore(model, head, best["state"])
            base, tuned = _final_compare(plan, cancelled)
            result.base_metrics, result.adapter_metrics = base["metrics"], tuned["metrics"]
            summary.update(test={"base": base["metrics"], "adapter": tuned["metrics"]})
    except (Cancelled, KeyboardInterrupt):
        result.status = result.stop_reason = "cancelled"
    summary.update(result.to_dict())
    if plan.registry:
        result.registry_id = _record(plan, result, summary)
        summary["registry_id"] = result.registry_id
    _write_json_atomic(run_dir / RESULT_NAME, summary)
    log.write("end", status=result.status, stop_reason=result.stop_reason, best_step=result.best_step,
              adapter_dir=result.adapter_dir, test_base=_headline(result.base_metrics),
              test_adapter=_headline(result.adapter_metrics))
    say(step, T, result.status)
    return result


def train(model: str, template, dataset, config: TrainConfig | None = None, run_dir: str | Path | None = None, *,
          progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None,
          registry: bool = True) -> TrainResult:
    """Validate, train and evaluate, blocking. The CLI and tests call this."""
    plan = prepare(model, template, dataset, config or TrainConfig(), run_dir, registry=registry)
    return run_training(plan, progress=progress, cancel=cancel)


# ---------------------------------------------------------------------------- helpers of the loop
def collate(examples: "Sequence[TrainExample]", pad_id: int) -> dict:
    """Right-padded tensors (here, not in core/train_data.py: core imports no torch): input_ids, attention_mask, labels [B, L]; class_ids, last [B]."""
    import torch

    from workbench.core.train_data import IGNORE

    L = max(len(e.input_ids) for e in examples)
    B = len(examples)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    labels = torch.full((B, L), IGNORE, dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e.input_ids)
        ids[b, :n] = torch.tensor(e.input_ids)
        mask[b, :n] = 1
        labels[b, :n] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "class_ids": torch.tensor([e.class_id for e in examples]),
            "last": torch.tensor([e.prompt_len - 1 for e in examples])}


def _trainable(model, head):
    yield from (p for p in model.parameters() if p.requires_grad)
    if head is not None:
        yield from head.parameters()


def _snapshot(model, head) -> dict:
    """CPU copy of the trainable weights (LoRA + head): small, and enough to restore the best."""
    from peft import get_peft_model_state_dict

    return {"lora": {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(model).items()},
            "head": None if head is None else {k: v.detach().to("cpu", copy=True) for k, v in head.state_dict().items()}}


def _restore(model, head, state: dict) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, state["lora"])
    if head is not None and state["head"] is not None:
        head.load_state_dict(state["head"])


def _save(plan: TrainPlan, step: int, log: RunLog) -> None:
    path = save_adapter_atomic(plan.model, plan.run_dir, plan.template, plan.config, head=plan.head,
                               extra={"step": step, "base_model": plan.identity, "labels": plan.labels})
    log.write("saved", step=step, path=str(path))


def _view(plan: TrainPlan):
    return session_for_model(plan.model, plan.tokenizer, name=plan.model_name, identity=plan.identity,
                             device=plan.device, adapter=str(plan.run_dir / ADAPTER_NAME))


def _eval_split(plan: TrainPlan, rows, cancelled, *, use_head: bool | None = None) -> dict:
    """Classification metrics of the current weights on `rows` (dev during training)."""
    import torch

    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.core.metrics import classification_metrics

    use_head = plan.config.mode == "head" if use_head is None else use_head
    amp = (torch.autocast("cuda", dtype=plan.amp_dtype) if plan.amp_dtype is not None else contextlib.nullcontext())
    with amp:
        if use_head:
            golds, preds = _head_predict(plan, rows, cancelled)
            return classification_metrics(golds, preds, plan.labels)
        res = evaluate(plan.template, plan.dataset, _view(plan), EvalConfig(shots=0, method=plan.config.eval_method),
                       rows=rows, pool=plan.train_rows, cancel=cancelled)
    return res.metrics


def _head_predict(plan: TrainPlan, rows, cancelled) -> tuple[list[str], list[str]]:
    import torch

    from workbench.core import train_data as td
    from workbench.jobs.inference import EvalConfig, build_prompts

    view = _view(plan)
    prompts = build_prompts(plan.template, rows, plan.train_rows, EvalConfig(shots=0), session=view)
    exs = td.build_examples(plan.template, rows, prompts, view.encode_pair, plan.labels)
    lm = plan.model.get_base_model()
    golds, preds = [], []
    with torch.inference_mode():
        for i in range(0, len(exs), 16):
            if cancelled():
                raise Cancelled()
            chunk = exs[i:i + 16]
            b = {k: v.to(plan.device) for k, v in collate(chunk, plan.tokenizer.pad_token_id).items()}
            hidden = lm.get_decoder()(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
            h = hidden[torch.arange(len(chunk), device=hidden.device), b["last"]]
            pred = plan.head(h.to(plan.head.weight.dtype)).argmax(-1).tolist()
            golds += [e.label for e in chunk]
            preds += [plan.labels[p] for p in pred]
    return golds, preds


def _final_compare(plan: TrainPlan, cancelled) -> tuple[dict, dict]:
    """Base model (adapter disabled) vs base + best adapter on the test split, same template and rows."""
    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.core.metrics import classification_metrics

    cfg = EvalConfig(shots=0, method=plan.config.eval_method, split="test", split_seed=plan.config.split_seed,
                     dev_fraction=plan.config.dev_fraction, test_fraction=plan.config.test_fraction,
                     limit=plan.config.test_limit)
    plan.model.eval()
    with plan.model.disable_adapter():
        base_view = _view(plan)
        base_view.adapter = None
        base = evaluate(plan.template, plan.dataset, base_view, cfg, rows=plan.test_rows, pool=plan.train_rows,
                        cancel=cancelled)
    base.save(plan.run_dir / "base_results.json")
    if plan.config.mode == "head":
        golds, preds = _head_predict(plan, plan.test_rows, cancelled)
        tuned = {"metrics": classification_metrics(golds, preds, plan.labels)}
    else:
        res = evaluate(plan.template, plan.dataset, _view(plan), cfg, rows=plan.test_rows, pool=plan.train_rows,
                       cancel=cancelled)
        res.save(plan.run_dir / "adapter_results.json")
        tuned = res.to_dict()
    return base.to_dict(), tuned


def _summary(plan: TrainPlan, result: TrainResult, train_s: float, t_start: float) -> dict:
    import resource

    import torch

    from workbench.engine.device_memory import memory_report

    mem = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    mem.update(memory_report(plan.device))
    if plan.device.startswith("cuda"):
        mem["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {"config": asdict(plan.config), "model": plan.model_name, "identity": plan.identity,
            "template": {"name": plan.template.name, "hash": plan.template.content_hash()},
            "data": {"name": plan.dataset.name, "fingerprint": plan.dataset.fingerprint(),
                     "n_train": len(plan.train_rows), "n_dev": len(plan.dev_rows), "n_test": len(plan.test_rows),
                     "train_indices": [_plain(i) for i in plan.train_rows.index]},
            "labels": plan.labels, "target_modules": plan.target_modules, "device": plan.device,
            "timings": {"train_s": round(train_s, 2), "total_s": round(time.time() - t_start, 2),
                        "steps_per_s": round(result.steps / train_s, 4) if train_s else None},
            "memory": mem}


def _record(plan: TrainPlan, result: TrainResult, summary: dict) -> str:
    from workbench.storage.runs import RunRegistry

    metrics = {"steps": result.steps, "best_step": result.best_step, "best_dev": result.best_metric}
    for name, m in (("base", result.base_metrics), ("adapter", result.adapter_metrics)):
        for k, v in _headline(m).items():
            metrics[f"{name}_{k}"] = v
    return RunRegistry().add(
        "train", name=f"train {plan.template.name}", template_hash=plan.template.content_hash(),
        template_yaml=plan.template.to_yaml(), model=plan.identity, adapter=result.adapter_dir,
        data_fingerprint=plan.dataset.fingerprint(), data_name=plan.dataset.name, seed=plan.config.seed,
        settings=asdict(plan.config), metrics=metrics, payload=summary, status=result.status,
        payload_path=str(plan.run_dir))


def _headline(m: dict | None) -> dict:
    return {k: m[k] for k in ("n", "accuracy", "macro_f1") if k in m} if m else {}


def _plain(v):
    return v.item() if hasattr(v, "item") else v
