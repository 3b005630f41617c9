"""Issue 29 items 6 and 8: YAML measured by its expanded size, and the lm-eval task loader
held to the same limits as the template loader (regular files only, sizes, no empty path)."""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

from workbench.errors import TemplateError


def _alias_text(n_aliases: int = 19_000, size: int = 10_000) -> str:
    lines = ["name: t", "input: '{{ text }}'", "answer_choices: {a: [yes], b: [no]}", "metadata:",
             f"  big: &big {'x' * size}", "  copies:"]
    lines += ["    - *big"] * n_aliases
    return "\n".join(lines) + "\n"


def test_aliases_of_a_long_string_are_counted_by_their_characters(tmp_path):
    """An 86 KB... here ~200 KB file that is 190 MB once loaded: refused in well under a second."""
    from workbench.core.templates import load_templates

    text = _alias_text()
    assert len(text) < 300_000
    t0 = time.monotonic()
    with pytest.raises(TemplateError, match="characters once its aliases"):
        load_templates(text)
    assert time.monotonic() - t0 < 2
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(TemplateError, match="characters once its aliases"):
        load_templates(p)
    # a few aliases of a short value are fine
    assert load_templates(_alias_text(5, 20))[0].name == "t"


def test_a_huge_template_file_is_refused():
    from workbench.core.templates import MAX_YAML_CHARS, load_templates

    with pytest.raises(TemplateError, match="characters long"):
        load_templates("name: t\ninput: '" + "x" * (MAX_YAML_CHARS + 10) + "'\n")


BOMB = ["task: bomb", "dataset_path: x", "output_type: multiple_choice", "doc_to_text: '{{q}}'",
        "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
BOMB += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
BOMB += ["process_results: !function utils.process"]


def _list_tasks(folder: str, conn) -> None:
    try:
        from workbench.storage.lmeval_library import TaskLibrary

        lib = TaskLibrary(include_paths=[folder], installed=False)
        conn.send(("ok", sorted(lib.names())))
    except BaseException as e:  # noqa: BLE001
        conn.send((type(e).__name__, str(e)[:200]))


def _in_child(fn, *args, timeout=20):
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe(duplex=False)
    p = ctx.Process(target=fn, args=(*args, b))
    p.start()
    try:
        return a.recv() if a.poll(timeout) else ("hung", "")
    finally:
        if p.is_alive():
            p.kill()
        p.join()


def test_task_loader_refuses_an_alias_bomb(tmp_path):
    from workbench.storage.lmeval_library import TaskLibrary

    (tmp_path / "bomb.yaml").write_text("\n".join(BOMB) + "\n")
    t0 = time.monotonic()
    with pytest.raises(TemplateError, match="alias"):
        TaskLibrary(include_paths=[str(tmp_path)], installed=False).load_file(tmp_path / "bomb.yaml")
    assert time.monotonic() - t0 < 3
    # by name (`eval --task bomb --include-path DIR`): the index skips the file, in a child in
    # case a regression hangs as the run did
    kind, out = _in_child(_load_by_name, str(tmp_path), "bomb")
    assert kind == "TemplateError", (kind, out)


def _load_by_name(folder: str, name: str, conn) -> None:
    try:
        from workbench.storage.lmeval_library import TaskLibrary

        TaskLibrary(include_paths=[folder], installed=False).load(name)
        conn.send(("ok", ""))
    except BaseException as e:  # noqa: BLE001
        conn.send((type(e).__name__, str(e)[:200]))


def test_task_loader_skips_a_fifo_and_lists_the_rest(tmp_path):
    (tmp_path / "ok.yaml").write_text("task: fine_task\ndataset_path: x\noutput_type: multiple_choice\n"
                                      "doc_to_text: '{{q}}'\ndoc_to_choice: [a, b]\ndoc_to_target: 0\n")
    os.mkfifo(tmp_path / "fifo.yaml")
    kind, out = _in_child(_list_tasks, str(tmp_path))
    assert kind == "ok", (kind, out)
    assert "fine_task" in out
    from workbench.core.lmeval_yaml import read_yaml_text

    with pytest.raises(TemplateError, match="not a regular file"):
        read_yaml_text(tmp_path / "fifo.yaml")


def test_empty_include_path_is_refused(tmp_path, monkeypatch):
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.core.lmeval_yaml import IncludeRoots

    monkeypatch.chdir(tmp_path)
    for bad in ("", "  "):
        with pytest.raises(TemplateError, match="include-path is empty"):
            TaskLibrary(include_paths=[bad], installed=False)
        with pytest.raises(TemplateError, match="include-path is empty"):
            IncludeRoots.for_file(tmp_path / "t.yaml", include_paths=[bad])
