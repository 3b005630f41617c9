"""Search runs in the run registry: which searches used a test split, and the list the Search tab shows.
Registry reads only (the search itself checkpoints through RunRegistry.update in jobs/search.py)."""
from __future__ import annotations


def split_key(cfg) -> str:
    """The train/dev/test split an eval config draws, as searches record it (metrics["split"])."""
    return f"seed={cfg.split_seed} dev={cfg.dev_fraction} test={cfg.test_fraction}"


def test_uses(dataset, eval_cfg, registry) -> int:
    """How many stored searches have scored this dataset's test split (same split settings)."""
    key = split_key(eval_cfg)
    fp = dataset.fingerprint()
    return sum(1 for r in registry.list(kind="search", limit=100_000)
               if r.data_fingerprint == fp and r.metrics.get("test_used") and r.metrics.get("split") == key)


def list_searches(registry=None, limit: int = 50) -> list[dict]:
    from workbench.storage.runs import RunRegistry

    reg = registry or RunRegistry()
    return [{"id": r.id, "name": r.name, "status": r.metrics.get("status", r.status), "data": r.data_name,
             "created_at": r.created_at, "winner": r.metrics.get("winner"),
             "best_dev_accuracy": r.metrics.get("best_dev_accuracy"),
             "test_winner_accuracy": r.metrics.get("test_winner_accuracy")}
            for r in reg.list(kind="search", limit=limit)]
