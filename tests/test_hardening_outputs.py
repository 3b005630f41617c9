"""Issue 29 items 9-12: what the workbench writes for people, and the limits users can see."""
from __future__ import annotations

import json

import pandas as pd
import pytest

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1:A9)", "-2+3", "\t=1", "plain", "a=b"]


# ---------------------------------------------------------------------------- item 9: CSV formulas
def test_predict_csv_escapes_formula_cells_and_jsonl_stays_exact(tmp_path):
    from workbench.commands.predict import write_table

    df = pd.DataFrame({"text": FORMULAS, "pred": ["=HYPERLINK(\"x\")"] * len(FORMULAS), "score": [-1.5] * len(FORMULAS),
                       "=col": ["x"] * len(FORMULAS)})
    write_table(df, str(tmp_path / "pred.csv"))
    back = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert list(back["text"]) == ["'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1:A9)", "'-2+3", "'\t=1", "plain", "a=b"]
    assert set(back["pred"]) == {"'=HYPERLINK(\"x\")"}
    assert list(back["score"]) == [-1.5] * len(FORMULAS)            # numbers are not text: untouched
    assert "'=col" in back.columns
    write_table(df, str(tmp_path / "pred.tsv"))
    assert "\n'=cmd" in (tmp_path / "pred.tsv").read_text()
    write_table(df, str(tmp_path / "pred.jsonl"))
    rows = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == FORMULAS                      # JSON stays exact


def test_matrix_download_csv_escapes_formula_cells(tmp_path, monkeypatch):
    from workbench.app import matrix

    recs = [{"row": 0, "gold": "=1+1", "text": "@SUM(A1)", "note": {"tag": "+x", "comment": "ok"},
             "cells": {"run": {"pred": "=2", "correct": True, "scores": {"a": -0.5}}}}]
    monkeypatch.setattr(matrix, "records", lambda m: recs)
    path = matrix.to_csv(None, tmp_path / "m.csv")
    back = pd.read_csv(path, keep_default_na=False)
    assert back.loc[0, "gold"] == "'=1+1" and back.loc[0, "text"] == "'@SUM(A1)"
    assert back.loc[0, "note_tag"] == "'+x" and back.loc[0, "run · pred"] == "'=2"
    assert back.loc[0, "run · score · a"] == -0.5
