"""The models x templates grid, sequential: columns dropped as soon as they are settled worse.

    res = compare_grid_sequential({"default": lambda: held_session(ModelRef("default"), "me"),
                                   "360M": lambda: held_session(ModelRef("HuggingFaceTB/SmolLM2-360M"), "me")},
                                  [t_a, t_b], dataset, EvalConfig(limit=1000), SequentialOptions(alpha=0.05))
    res.settings["sequential"]["columns"]   # per column: rows scored, when and why it stopped, what it spent
    res.settings["sequential"]["models"]    # how the models were held: "resident" or "switched", and the loads

The rule is exactly the one of a template comparison (jobs/sequential.py `race`): rows in a seeded
random order, growing batches, a confidence sequence for every two columns at alpha / pairs, a column
dropped once another column (the leader, or any other) is settled better, a stop when one column is
left, all left are equivalent within the margin, or the budget is spent. Only the holding of the
models differs, and it never changes a prediction, so the result is the same whichever is chosen:

  * "resident": every model is held for the whole run. Chosen when at most one model is local (an
    inference server holds no weights here), or when the local models' weight files together take at
    most half the free memory of the device they load on (RAM, or the GPU's free memory).
  * "switched": only one local model in memory at a time, as the fixed-n grid does. Each batch scores
    every active column of one model while it is held, then the next model; the model order alternates
    from batch to batch (A B | B A | ...), so the model last used in a batch starts the next one
    without a load. With two local models that is one load per batch; the growing batches (x1.5) keep
    the batches, hence the loads, to about log(budget / first batch) / log(1.5): 7 for 1,000 rows from 32.
    The switches and the seconds spent opening models are reported, and counted in the wall time.
"""
from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from workbench.core.sequential import SequentialOptions

RESIDENT_SHARE = 0.5        # resident when the local weights take at most this share of the free memory
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def choose_holding(local_bytes: Sequence[int | None], free_bytes: int | None) -> tuple[str, str]:
    """("resident" | "switched", why) from the local models' weight sizes (None: unknown) and the
    free memory of their device (None: unknown). Pure, so the rule is tested by hand."""
    if len(local_bytes) <= 1:
        return "resident", ("one local model" if local_bytes else "no local model") + \
            ": inference servers hold no weights here"
    if any(b is None for b in local_bytes) or free_bytes is None:
        return "switched", "the local models' size or the free memory is unknown, so one is loaded at a time"
    need = sum(local_bytes)
    mb = 2 ** 20
    if need <= RESIDENT_SHARE * free_bytes:
        return "resident", f"the {len(local_bytes)} local models' weights ({need / mb:,.0f} MB) fit in half " \
                           f"the free memory ({free_bytes / mb:,.0f} MB)"
    return "switched", f"the {len(local_bytes)} local models' weights ({need / mb:,.0f} MB) exceed half the " \
                       f"free memory ({free_bytes / mb:,.0f} MB), so one is loaded at a time"


def weight_bytes(ref) -> int | None:
    """The size of a local model's weight files (what loading it takes, roughly), or None."""
    with contextlib.suppress(Exception):
        from workbench.engine.models import resolve_model

        path = Path(resolve_model(ref.model).path)
        files = [path] if path.is_file() else [f for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES]
        total = sum(f.stat().st_size for f in files if f.is_file())
        return total or None
    return None


def free_bytes(refs) -> int | None:
    """Free memory where the local models load: the GPU's free memory, else available RAM."""
    with contextlib.suppress(Exception):
        from workbench.engine.device_memory import free_gpu_bytes
        from workbench.engine.session import pick_device

        device = pick_device(next((r.device for r in refs if r.device), None))
        if str(device).startswith("cuda"):
            return free_gpu_bytes(device)
        import psutil

        return int(psutil.virtual_memory().available)
    return None


def plan_holding(refs) -> tuple[str, str]:
    """How a sequential grid over these ModelRefs holds its models (module doc)."""
    local = [r for r in refs if not r.remote]
    if len(local) <= 1:
        return choose_holding([0] * len(local), None)
    return choose_holding([weight_bytes(r) for r in local], free_bytes(local))


class GridModels:
    """The grid's models for `race`: `hold(label)` gives that model's session. Resident: every model
    is opened on entry and held until exit. Switched: a model is opened for each hold and released after
    it (its weights stay until the next local model loads). Counts the switches (opening another model
than the one last held: a load, when local) and the seconds spent opening models."""

    def __init__(self, models: Mapping[str, object], mode: str = "switched", why: str = ""):
        if mode not in ("resident", "switched"):
            raise ValueError(f"mode must be resident or switched, got {mode!r}")
        self.models = dict(models)
        self.labels = list(self.models)
        self.mode, self.why = mode, why
        self.info: dict[str, dict] = {}
        self._stack = contextlib.ExitStack()
        self._resident: dict[str, object] = {}
        self._last: str | None = None
        self.switches, self.hold_s = 0, 0.0
        self.first_load_s: dict[str, float] = {}

    def __enter__(self) -> "GridModels":
        if self.mode == "resident":
            for lab in self.labels:
                self._resident[lab] = self._open(lab, self._stack)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        # resident: free the local models loaded next to the first one (as a fixed-n grid leaves only one
        # local model in memory), so the first model (the UI's model bar's) is the one left loaded
        local = [s for s in self._resident.values() if getattr(s, "remote", None) is None and hasattr(s, "unload")]
        for s in local[1:]:
            s.unload()

    def _open(self, label: str, stack: contextlib.ExitStack):
        from workbench.jobs.compare_models import open_model

        t0 = time.perf_counter()
        session = open_model(self.models[label], stack)
        session.load()
        dt = time.perf_counter() - t0
        self.hold_s += dt
        if label != self._last:      # a switch: another model than the one last held (a load, when local)
            self.switches += 1
        self.first_load_s.setdefault(label, round(dt, 3))
        if label not in self.info:
            self.info[label] = {"name": session.config.model, "identity": session.identity,
                                "adapter": session.adapter, "backend": getattr(session, "backend", None)}
        self._last = label
        return session

    @contextlib.contextmanager
    def hold(self, label: str):
        if self.mode == "resident":
            yield self._resident[label]
            return
        with contextlib.ExitStack() as stack:
            yield self._open(label, stack)

    @property
    def report(self) -> dict:
        return {"mode": self.mode, "why": self.why, "switches": self.switches, "hold_s": round(self.hold_s, 3),
                "first_load_s": self.first_load_s}


def compare_grid_sequential(
    models: Mapping[str, object],
    templates: Sequence,
    dataset,
    config=None,
    opts: SequentialOptions | None = None,
    *,
    holding: tuple[str, str] = ("switched", "one local model loaded at a time"),
    baseline: str | None = None,
    registry=None,
    store: bool = True,
    name: str | None = None,
    progress: Callable[..., None] | None = None,
    cancel: Callable[[], bool] | None = None,
):
    """The models x templates grid scored batch by batch until settled (module doc). `models` as for
    compare_models.compare_grid (label -> session, or a callable giving a session or a hold on one);
    `holding`: (mode, why) from plan_holding. Returns a ComparisonResult like compare_grid's (columns
    TEMPLATE @ MODEL, settings["grid"]) with settings["sequential"] as compare_sequential's."""
    from workbench.jobs.compare_common import run_provenance, store_comparison
    from workbench.jobs.compare_models import grid_setup
    from workbench.jobs.sequential import Column, finish, race

    opts = opts or SequentialOptions()
    opts.validate()
    config, labels, tnames, cols, reg, rows, pool, demos = grid_setup(models, templates, dataset, config, baseline,
                                                                       registry, store)
    columns = [Column(nm, t, ml) for nm, ml, t in cols]
    holder = GridModels(dict(zip(labels, models.values())), *holding)
    with holder:
        st = race(columns, dataset, config, opts, rows, pool, holder, progress=progress, cancel=cancel)
    cmp = finish(st, dataset, rows, config, opts, baseline=baseline, models_report=holder.report)
    for t_info, c in zip(cmp.templates, columns):
        t_info.update(model=c.model, model_identity=holder.info.get(c.model, {}).get("identity"))
    cmp.settings["grid"] = {"models": labels, "templates": tnames}
    cmp.inputs["demo_indices"] = demos[tnames[0]]
    first = holder.info[labels[0]]
    # labels' order, so the first model is `model` (holder.info is in the order the models were opened)
    cmp.provenance = run_provenance(dataset, None, config,
                                    models={lab: holder.info[lab] for lab in labels if lab in holder.info})
    if reg is not None:
        names = [c.name for c in columns]
        who = types.SimpleNamespace(identity=first["identity"], adapter=first["adapter"])   # what store_comparison records
        cmp.run_id = store_comparison(reg, cmp.to_dict(), name or "sequential compare: " + " vs ".join(names),
                                      dataset, who, config,
                                      metrics={"n": cmp.n, "reference": cmp.reference, "best": cmp.leaderboard[0]["name"],
                                               "best_accuracy": cmp.leaderboard[0]["accuracy"], "templates": names,
                                               "models": [m["identity"] for m in holder.info.values()],
                                               "sequential": True, "rows_scored": st.pos, "budget_rows": st.budget})
    return cmp
