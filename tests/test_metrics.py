"""Metrics against hand-worked cases."""
import pytest

from workbench.errors import DataError
from workbench.core.metrics import (classification_metrics, format_table, generation_metrics,
                               normalize_answer, token_f1)


def test_classification_hand_worked():
    gold = ["pos", "pos", "pos", "neg", "neg", "neu"]
    pred = ["pos", "pos", "neg", "neg", "pos", "neg"]
    m = classification_metrics(gold, pred)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["majority_baseline"] == pytest.approx(3 / 6)
    # pos: tp=2, predicted 3, gold 3 -> P=R=F1=2/3
    assert m["per_class"]["pos"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    # neg: tp=1, predicted 3, gold 2 -> P=1/3, R=1/2, F1=0.4
    assert m["per_class"]["neg"]["precision"] == pytest.approx(1 / 3)
    assert m["per_class"]["neg"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["neg"]["f1"] == pytest.approx(0.4)
    # neu: never predicted -> zero_division=0, no warning-dependent NaN
    assert m["per_class"]["neu"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.4 + 0) / 6)
    # rows gold, cols pred, labels sorted
    assert m["confusion"]["labels"] == ["neg", "neu", "pos"]
    assert m["confusion"]["matrix"] == [[1, 0, 1], [1, 0, 0], [1, 0, 2]]


def test_explicit_labels_keep_order_and_unknown_prediction_is_wrong():
    m = classification_metrics(["a", "b", "b"], ["a", "b", "??"], labels=["b", "a", "c"])
    assert m["confusion"]["labels"] == ["b", "a", "c"]
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert m["per_class"]["c"]["support"] == 0


def test_length_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="gold has 2 answers but pred has 1"):
        classification_metrics(["a", "b"], ["a"])


def test_normalize_and_token_f1():
    assert normalize_answer("  The  Eiffel-Tower! ") == "eiffeltower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert token_f1("the big red dog", "red dog") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert token_f1("", "") == 1.0
    assert token_f1("x", "") == 0.0
    assert token_f1("cat", "dog") == 0.0


def test_generation_metrics_with_aliases():
    gold = [["Paris", "City of Light"], "42", "blue whale"]
    pred = ["paris.", "It is 42", "the whale"]
    g = generation_metrics(gold, pred)
    assert g["per_example"]["exact_match"] == [1.0, 0.0, 0.0]
    assert g["per_example"]["contains"] == [1.0, 1.0, 0.0]
    assert g["per_example"]["token_f1"][1] == pytest.approx(0.5)  # "it is 42" vs "42": P=1/3, R=1
    assert g["per_example"]["token_f1"][2] == pytest.approx(2 * 1 * 0.5 / 1.5)  # "whale" vs "blue whale"
    assert g["exact_match"] == pytest.approx(1 / 3)
    assert g["contains"] == pytest.approx(2 / 3)


def test_format_table_lists_every_class():
    m = classification_metrics(["a", "b", "b"], ["a", "b", "a"])
    text = format_table(m)
    assert "accuracy     0.6667" in text
    assert "macro-F1" in text
    lines = [ln.split() for ln in text.splitlines()]
    assert ["a", "0.5000", "1.0000", "0.6667", "1"] in lines
    assert ["b", "1.0000", "0.5000", "0.6667", "2"] in lines


# --- plots built from these dicts (plots.py has no test file of its own) ---------------------

def test_plots_carry_the_numbers():
    from workbench.core import plots

    gold = ["pos", "pos", "pos", "neg", "neg", "neu"]
    pred = ["pos", "pos", "neg", "neg", "pos", "neg"]
    m = classification_metrics(gold, pred)

    bar = plots.per_class_bar(m)
    assert [t.name for t in bar.data] == ["Precision", "Recall", "F1"]
    assert list(bar.data[2].y) == pytest.approx([0.4, 0.0, 2 / 3])
    assert bar.layout.template.layout.paper_bgcolor == "white"  # plotly_white applied
    assert bar.layout.xaxis.title.text == "class" and bar.layout.title.text

    heat = plots.confusion_heatmap(m)
    assert [list(r) for r in heat.data[0].z] == [[1, 0, 1], [1, 0, 0], [1, 0, 2]]
    assert heat.layout.yaxis.title.text == "gold" and heat.layout.xaxis.title.text == "predicted"
    norm = plots.confusion_heatmap(m, normalize=True)
    assert list(norm.data[0].z[2]) == pytest.approx([1 / 3, 0, 2 / 3])
    assert norm.data[0].text[2][2] == "67%<br>(2)"

    f1 = plots.side_by_side_per_class(m, classification_metrics(gold, gold), names=("base", "lora"))
    assert [t.name for t in f1.data] == ["base", "lora"] and list(f1.data[1].y) == [1.0, 1.0, 1.0]

    curves = plots.training_curves([{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.0,
                                                                "dev_accuracy": 0.7}])
    assert list(curves.data[0].x) == [10, 20] and list(curves.data[1].y) == [0.7]
    assert curves.data[1].yaxis == "y2"

    lb = plots.leaderboard_ci([{"name": "t1", "accuracy": 0.8, "ci_low": 0.7, "ci_high": 0.85},
                               {"name": "t2", "accuracy": 0.6, "ci_low": 0.5, "ci_high": 0.7}])
    assert list(lb.data[0].y) == ["t2", "t1"]  # best drawn on top
    assert list(lb.data[0].error_x.array) == pytest.approx([0.1, 0.05])
    assert list(lb.data[0].error_x.arrayminus) == pytest.approx([0.1, 0.1])

    assert list(plots.class_balance({"a": 3, "b": 1}).data[0].text) == ["3 (75%)", "1 (25%)"]
    assert len(plots.score_spread({"t1": [0.5, 0.6], "t2": [0.7]}).data) == 2
