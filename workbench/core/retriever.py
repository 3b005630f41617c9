"""Retrievers for Self-Ask: BM25 over a local corpus, or any Python hook.

    r = BM25Retriever.from_file("facts.txt")              # one passage per line (or blank-line paragraphs)
    r = BM25Retriever.from_file("wiki.jsonl", field="text")
    r = BM25Retriever.from_file("facts.csv", field="passage")
    r.search("When was the Eiffel Tower built?", k=3)      # -> [Passage(text, score, id), ...]

    r = as_retriever(lambda q: ["passage one", "passage two"])   # a hook: question -> list[str]
    r = as_retriever(my_search_object)                            # anything with .search(question, k)
    r = load_retriever("facts.jsonl:text")                        # a spec string (CLI, configs)
    r = load_retriever("python:mypkg.search:find")                # a hook named by module:attribute

Every retriever this module hands out has one method, `search(question, k) -> list[Passage]`,
best first. The Self-Ask runner (workbench/selfask.py) only calls that.
"""
from __future__ import annotations

import csv
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from workbench.errors import ConfigError, DataError


@dataclass
class Passage:
    text: str
    score: float | None = None   # retriever's own score (BM25 for ours); None for hooks that give none
    id: int | str | None = None  # position in the corpus, or the hook's own id

    def to_dict(self) -> dict:
        return {"text": self.text, "score": None if self.score is None else round(float(self.score), 4), "id": self.id}


class Retriever(Protocol):
    def search(self, question: str, k: int = 3) -> list[Passage]: ...


# ---------------------------------------------------------------------------- corpus files
def read_corpus(path: str | Path, field: str | None = None) -> list[str]:
    """Passages from a local file.

    .txt / .md: one passage per line; if the file has blank lines, blank-line-separated
    paragraphs instead (a paragraph's lines are joined with spaces).
    .jsonl: one JSON object per line, the passage in `field` (default "text").
    .json: a list of strings, or a list of objects with `field`.
    .csv / .tsv: the passage in column `field` (default "text").
    Empty passages are dropped; duplicates are kept (they are separate documents).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Retriever corpus {p} does not exist.",
                        hint="Point to a .txt (one passage per line), .jsonl, .json or .csv file.")
    suffix = p.suffix.lower()
    text = p.read_text(encoding="utf-8", errors="replace")
    if suffix in (".jsonl", ".ndjson"):
        key = field or "text"
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}, line {n}: not valid JSON ({e.msg}).", hint="Each line must be one JSON object.") from e
            out.append(_field(obj, key, f"{p}, line {n}"))
        passages = out
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: not valid JSON ({e.msg}, line {e.lineno}).") from e
        if not isinstance(data, list):
            raise DataError(f"{p}: expected a JSON list of passages, got {type(data).__name__}.",
                            hint="Use a list of strings or of objects with a text field, or a .jsonl file.")
        passages = [x if isinstance(x, str) else _field(x, field or "text", f"{p}, item {i}") for i, x in enumerate(data)]
    elif suffix in (".csv", ".tsv"):
        key = field or "text"
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        if reader.fieldnames is None or key not in reader.fieldnames:
            raise DataError(f"{p} has no column '{key}'; its columns are {reader.fieldnames}.",
                            hint="Name the passage column: PATH:COLUMN (CLI) or field=... (Python).")
        passages = [row[key] or "" for row in reader]
    else:
        if field:
            raise ConfigError(f"A field ('{field}') was given for the plain-text corpus {p}.",
                              hint="Fields apply to .jsonl, .json and .csv corpora only.")
        if re.search(r"\n[ \t]*\n", text.strip()):
            passages = [" ".join(par.split()) for par in re.split(r"\n[ \t]*\n", text)]
        else:
            passages = text.splitlines()
    passages = [s.strip() for s in passages if s and s.strip()]
    if not passages:
        raise DataError(f"Retriever corpus {p} holds no passages.", hint="Check the file and the field name.")
    return passages


def _field(obj: Any, key: str, where: str) -> str:
    if not isinstance(obj, dict) or key not in obj:
        keys = list(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{where}: no field '{key}' (has {keys}).",
                        hint="Name the passage field: PATH:FIELD (CLI) or field=... (Python).")
    return str(obj[key] or "")


# ---------------------------------------------------------------------------- BM25
class BM25Retriever:
    """BM25 (bm25s, Lucene variant) over a list of passages.

    Tokenization is bm25s's own: lowercase, words of 2+ characters, English stopwords
    removed, no stemming (so there is no extra dependency, and results are easy to explain).
    """

    def __init__(self, passages: Sequence[str], *, source: str = "passages", k1: float = 1.5, b: float = 0.75):
        import bm25s

        self.passages = [str(p) for p in passages]
        if not self.passages:
            raise DataError("The retriever corpus is empty.", hint="Give it at least one passage.")
        self.source = source
        self._bm25s = bm25s
        self.index = bm25s.BM25(k1=k1, b=b)
        tokens = self._tok(self.passages, ids=True)
        if not tokens.vocab:
            raise DataError(f"No passage of {source} ({len(self.passages)} passages) has a word BM25 can index.",
                            hint="BM25 matches words of 2+ letters that are not English stopwords; check the corpus.")
        self.index.index(tokens, show_progress=False)

    def _tok(self, texts: list[str], ids: bool):
        return self._bm25s.tokenize(texts, stopwords="en", show_progress=False, return_ids=ids)

    @classmethod
    def from_file(cls, path: str | Path, field: str | None = None, **kw) -> "BM25Retriever":
        return cls(read_corpus(path, field), source=str(path) + (f":{field}" if field else ""), **kw)

    def search(self, question: str, k: int = 3) -> list[Passage]:
        k = max(1, min(int(k), len(self.passages)))
        query = self._tok([question], ids=False)
        if not query[0]:
            return []   # only stopwords / punctuation: nothing to match on
        docs, scores = self.index.retrieve(query, k=k, show_progress=False)
        out = []
        for i, s in zip(docs[0].tolist(), scores[0].tolist()):
            if s <= 0:   # bm25s pads with zero-score documents when fewer match
                continue
            out.append(Passage(self.passages[i], float(s), int(i)))
        return out

    def __repr__(self) -> str:
        return f"BM25Retriever({self.source!r}, {len(self.passages)} passages)"


# ---------------------------------------------------------------------------- hooks
class HookRetriever:
    """Wraps a user's callable `question -> list[str | (text, score) | dict | Passage]`, or an
    object with `.search(question, k)` returning the same, into a Retriever."""

    def __init__(self, hook: Any, name: str | None = None):
        self.hook = hook
        self.source = name or getattr(hook, "__name__", None) or type(hook).__name__

    def search(self, question: str, k: int = 3) -> list[Passage]:
        if hasattr(self.hook, "search") and callable(self.hook.search):
            raw = self.hook.search(question, k)
        else:
            raw = self.hook(question)
        if raw is None:
            return []
        if isinstance(raw, (str, Passage, dict, tuple)):
            raw = [raw]
        out = [_to_passage(x, i, self.source) for i, x in enumerate(raw)]
        return [p for p in out if p.text.strip()][:k]

    def __repr__(self) -> str:
        return f"HookRetriever({self.source!r})"


def _to_passage(x: Any, i: int, source: str) -> Passage:
    if isinstance(x, Passage):
        return x
    if isinstance(x, str):
        return Passage(x, None, i)
    if isinstance(x, tuple) and len(x) == 2:
        return Passage(str(x[0]), float(x[1]), i)
    if isinstance(x, dict) and "text" in x:
        return Passage(str(x["text"]), x.get("score"), x.get("id", i))
    raise ConfigError(f"Retriever hook {source} returned {type(x).__name__} item {x!r:.60}.",
                      hint="Return a list of strings, (text, score) pairs, or dicts with a 'text' key.")


def as_retriever(obj: Any) -> Retriever | None:
    """Whatever the user gave → something with `.search(question, k) -> list[Passage]`.

    None → None; a BM25Retriever/HookRetriever → itself; a str/Path → `load_retriever`;
    a list of strings → BM25 over them; an object with `.search` or a callable → HookRetriever.
    """
    if obj is None or isinstance(obj, (BM25Retriever, HookRetriever)):
        return obj
    if isinstance(obj, (str, Path)):
        return load_retriever(str(obj))
    if isinstance(obj, (list, tuple)) and all(isinstance(x, str) for x in obj):
        return BM25Retriever(list(obj))
    if (hasattr(obj, "search") and callable(obj.search)) or callable(obj):
        return HookRetriever(obj)
    raise ConfigError(f"Cannot use {type(obj).__name__} as a retriever.",
                      hint="Pass a corpus path, a list of passages, a callable question -> list[str], "
                           "or an object with .search(question, k).")


def load_retriever(spec: str) -> Retriever:
    """A retriever from a spec string (what the CLI and saved configs hold).

    `PATH` or `PATH:FIELD` → BM25 over a local corpus (FIELD: JSONL key / CSV column);
    `python:MODULE:ATTR` → the hook MODULE.ATTR (a callable, an object with .search, or a
    zero-argument factory named `make_*` returning either). The module must be importable
    (on PYTHONPATH); this runs the user's own code, which they named explicitly.
    """
    spec = spec.strip()
    if spec.startswith("python:"):
        target = spec[len("python:"):]
        mod_name, _, attr = target.partition(":")
        if not mod_name or not attr:
            raise ConfigError(f"Retriever hook '{spec}' is not python:MODULE:ATTR.",
                              hint="For example python:my_search:search (my_search.py on PYTHONPATH).")
        try:
            obj = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"Could not load retriever hook {mod_name}.{attr}: {e}",
                              hint="Check the module is importable (PYTHONPATH) and defines that name.") from e
        if attr.startswith("make_") and callable(obj):
            obj = obj()
        return HookRetriever(obj, name=f"{mod_name}.{attr}")
    path, field = spec, None
    if not Path(spec).exists() and ":" in spec:
        head, _, tail = spec.rpartition(":")
        if Path(head).exists():
            path, field = head, tail
    return BM25Retriever.from_file(path, field)


# ---------------------------------------------------------------------------- answers
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"\w\w+")
_STOP = {"the", "and", "was", "were", "are", "is", "what", "who", "when", "where", "which", "how", "does", "did",
         "do", "of", "in", "on", "at", "to", "for", "by", "with", "from", "that", "this", "it", "its", "be", "an",
         "as", "or", "can", "could", "would", "will", "has", "have", "had", "many", "much"}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(text.strip()) if s.strip()]


def answer_from_passage(question: str, passage: str, max_chars: int = 240) -> str:
    """The sentence of `passage` that best matches `question` (most shared content words;
    the earliest on ties), cut to `max_chars` on a word boundary. This is what gets spliced
    in as the intermediate answer: one sentence reads like the demonstrations' answers,
    where a whole paragraph would drown the small model's context."""
    sents = sentences(passage) or [passage.strip()]
    q = {w for w in _WORD.findall(question.lower()) if w not in _STOP}
    best = max(range(len(sents)), key=lambda i: (len(q & set(_WORD.findall(sents[i].lower()))), -i))
    s = " ".join(sents[best].split())
    if len(s) > max_chars:
        s = s[:max_chars].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return s


def facts_corpus(explanations: Iterable[str]) -> list[str]:
    """Passages from answer explanations such as StrategyQA's `target` ("Yes. <facts>"): the
    leading verdict word is dropped so a passage states facts, not the answer. Using a
    dataset's own facts is *oracle* retrieval (the right facts are always in the corpus);
    say so when you report numbers."""
    out = []
    for t in explanations:
        t = re.sub(r"^\s*(yes|no|true|false)\b[.,:!]?\s*", "", str(t), flags=re.IGNORECASE).strip()
        if t:
            out.append(" ".join(t.split()))
    return out


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m workbench.core.retriever",
                                 description="Try a retriever corpus: print the top passages for a question.")
    ap.add_argument("corpus", help="PATH, PATH:FIELD or python:MODULE:ATTR")
    ap.add_argument("question")
    ap.add_argument("-k", type=int, default=3)
    a = ap.parse_args(argv)
    r = load_retriever(a.corpus)
    for p in r.search(a.question, a.k):
        print(f"[{p.score if p.score is None else round(p.score, 3)}] {p.text}")
        print(f"    -> {answer_from_passage(a.question, p.text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
