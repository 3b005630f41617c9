"""core/split.py draws the same rows as scikit-learn's train_test_split (which made every split
recorded before it), and core/metrics.py's numpy P/R/F1 equal scikit-learn's."""
import numpy as np
import pytest

from workbench.core.metrics import classification_metrics
from workbench.core.split import shuffle_split

sk_split = pytest.importorskip("sklearn.model_selection")
sk_metrics = pytest.importorskip("sklearn.metrics")


def _cases(n_cases: int = 400):
    rng = np.random.default_rng(0)
    for _ in range(n_cases):
        n = int(rng.integers(4, 400))
        k = int(rng.integers(1, 8))
        # skewed class sizes, so remainders tie and the tie-breaking draws are exercised
        p = rng.dirichlet(np.ones(k) * rng.uniform(0.3, 3))
        y = np.array([f"c{int(i)}" for i in rng.choice(k, size=n, p=p)], dtype=object)
        idx = np.arange(1000, 1000 + n) if rng.random() < 0.5 else rng.permutation(n * 3)[:n]
        n_test = int(rng.integers(1, n))
        yield idx, y, n_test, int(rng.integers(0, 10_000))


def _sk(idx, n_test, seed, y):
    try:
        return sk_split.train_test_split(idx, test_size=n_test, random_state=seed, stratify=y)
    except ValueError:
        return None


def _ours(idx, n_test, seed, y):
    try:
        return shuffle_split(idx, n_test, seed, labels=y)
    except ValueError:
        return None


def test_plain_split_equals_sklearn():
    for idx, _, n_test, seed in _cases():
        a_tr, a_te = shuffle_split(idx, n_test, seed)
        b_tr, b_te = sk_split.train_test_split(idx, test_size=n_test, random_state=seed)
        assert a_tr.tolist() == b_tr.tolist() and a_te.tolist() == b_te.tolist()


def test_stratified_split_equals_sklearn_including_refusals():
    refused = agreed = 0
    for idx, y, n_test, seed in _cases():
        a, b = _ours(idx, n_test, seed, y), _sk(idx, n_test, seed, y)
        assert (a is None) == (b is None), (len(idx), n_test, seed)
        if a is None:
            refused += 1
            continue
        agreed += 1
        assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
    assert refused > 10 and agreed > 200        # both branches really ran


def test_stratified_split_keeps_proportions_and_partitions():
    y = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10, dtype=object)
    tr, te = shuffle_split(np.arange(100), 20, 7, labels=y)
    assert sorted(tr.tolist() + te.tolist()) == list(range(100))
    assert sorted(np.unique(y[te], return_counts=True)[1].tolist()) == [2, 6, 12]


def test_refusals_name_the_reason():
    with pytest.raises(ValueError, match="only 1 row"):
        shuffle_split(np.arange(5), 2, 0, labels=["a", "a", "b", "b", "c"])
    with pytest.raises(ValueError, match="fewer than the 3 classes"):
        shuffle_split(np.arange(9), 2, 0, labels=["a", "b", "c"] * 3)


def test_classification_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    for _ in range(200):
        k = int(rng.integers(1, 6))
        n = int(rng.integers(1, 60))
        gold = [f"c{int(i)}" for i in rng.integers(0, k, n)]
        pred = [f"c{int(i)}" for i in rng.integers(0, k + 1, n)]        # c{k}: never a gold label
        labels = sorted(set(gold)) if rng.random() < 0.5 else None      # a prediction outside them
        m = classification_metrics(gold, pred, labels)
        labs = labels if labels is not None else sorted(set(gold) | set(pred))
        p, r, f, s = sk_metrics.precision_recall_fscore_support(gold, pred, labels=labs, average=None,
                                                                zero_division=0)
        for i, lab in enumerate(labs):
            c = m["per_class"][lab]
            assert c["precision"] == pytest.approx(p[i]) and c["recall"] == pytest.approx(r[i])
            assert c["f1"] == pytest.approx(f[i]) and c["support"] == s[i]
        assert m["macro_f1"] == pytest.approx(f.mean())
        assert m["confusion"]["matrix"] == sk_metrics.confusion_matrix(gold, pred, labels=labs).tolist()
