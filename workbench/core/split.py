"""Seeded shuffle splits, plain and stratified, in numpy.

    train_idx, test_idx = shuffle_split(idx, n_test, seed)                 # plain
    train_idx, test_idx = shuffle_split(idx, n_test, seed, labels=y)       # class proportions kept

Why not scikit-learn: importing `sklearn.model_selection` costs about 1.3 s of every
`workbench eval` process (scipy comes with it), more than loading the model. Every split the
workbench has ever recorded was made by `sklearn.model_selection.train_test_split(idx,
test_size=n, random_state=seed[, stratify=y])`, so this module draws the same random numbers
in the same order as that function does (scikit-learn 1.x: `ShuffleSplit` and
`StratifiedShuffleSplit` with one split, the remainder of each class handed out by
`_approximate_mode`) and gives the same rows, in the same order, for the same seed.
tests/test_split.py checks this against scikit-learn on many random inputs, when it is
installed. The algorithm is the published one; the code is ours.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def shuffle_split(idx: np.ndarray, n_test: int, seed: int, labels: Sequence | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) parts of `idx`: `n_test` rows to test, the rest to train, both shuffled.

    With `labels` (one per row of `idx`) each class keeps its proportion in both parts.
    Raises ValueError (with the reason) when a stratified split is impossible: a class with one
    row, or fewer test or train rows than classes."""
    idx = np.asarray(idx)
    n = len(idx)
    n_train = n - n_test
    if not 0 < n_test < n:
        raise ValueError(f"cannot take {n_test} of {n} rows for the test part and keep some to train")
    rng = np.random.RandomState(seed)
    if labels is None:
        perm = rng.permutation(n)
        return idx[perm[n_test:n_test + n_train]], idx[perm[:n_test]]

    y = np.asarray(labels)
    classes, y_ix, counts = np.unique(y, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"class(es) {[str(c) for c in classes[counts < 2]]} have only 1 row; "
                         "stratifying needs at least 2 per class")
    if n_train < len(classes):
        raise ValueError(f"the train part would have {n_train} rows, fewer than the {len(classes)} classes")
    if n_test < len(classes):
        raise ValueError(f"the test part would have {n_test} rows, fewer than the {len(classes)} classes")
    # rows of each class, in their original order
    by_class = np.split(np.argsort(y_ix, kind="stable"), np.cumsum(counts)[:-1])
    n_i = _apportion(counts, n_train, rng)
    t_i = _apportion(counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for c in range(len(classes)):
        rows = by_class[c].take(rng.permutation(counts[c]), mode="clip")
        train.extend(rows[:n_i[c]])
        test.extend(rows[n_i[c]:n_i[c] + t_i[c]])
    return idx[rng.permutation(train)], idx[rng.permutation(test)]


def _apportion(counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of `n_draws` rows each class gets: the floor of its proportional share, then one
    more for the classes with the largest remainders, ties broken at random (in that order of
    random draws: the result must equal scikit-learn's for the same generator state)."""
    exact = counts / counts.sum() * n_draws
    out = np.floor(exact)
    missing = int(n_draws - out.sum())
    if missing > 0:
        rest = exact - out
        for value in np.sort(np.unique(rest))[::-1]:
            (tied,) = np.where(rest == value)
            take = min(len(tied), missing)
            out[rng.choice(tied, size=take, replace=False)] += 1
            missing -= take
            if missing == 0:
                break
    return out.astype(int)
