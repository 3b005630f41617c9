"""lm-eval `include:` is confined to trusted roots (issue #15, item 1): the task file's folder,
a folder named with --include-path, or the installed lm-eval tasks folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core.lmeval_yaml import IncludeRoots, installed_tasks_dir
from workbench.core.templates import load_template
from workbench.errors import TemplateError

TASK = "task: t\noutput_type: multiple_choice\ndoc_to_text: '{{ q }}'\ndoc_to_target: 0\n"
SECRET = "doc_to_choice: ['SECRET-VALUE', 'b']\n"


@pytest.fixture()
def layout(tmp_path):
    """tasks/sub/task.yaml beside tasks/_base.yaml, and a secret YAML outside tasks/."""
    (tmp_path / "tasks" / "sub").mkdir(parents=True)
    (tmp_path / "tasks" / "_base.yaml").write_text("doc_to_choice: ['yes', 'no']\n")
    (tmp_path / "outside.yaml").write_text(SECRET)
    return tmp_path


def _task(layout, include: str, name: str = "task.yaml") -> Path:
    p = layout / "tasks" / "sub" / name
    p.write_text(f"include: {include}\n" + TASK)
    return p


def _refused(path, match, **kw):
    with pytest.raises(TemplateError) as e:
        load_template(path, **kw)
    assert "SECRET-VALUE" not in str(e.value)
    assert match in str(e.value), str(e.value)
    return e.value


def test_absolute_include_refused(layout):
    e = _refused(_task(layout, str(layout / "outside.yaml")), "absolute path")
    assert "--include-path" in e.hint


def test_dotdot_outside_the_root_refused(layout):
    _refused(_task(layout, "../../outside.yaml"), "outside the trusted task folders")
    # A symlink inside the root that points outside is just as far outside.
    (layout / "tasks" / "sub" / "link.yaml").symlink_to(layout / "outside.yaml")
    _refused(_task(layout, "link.yaml"), "outside the trusted task folders")


def test_dotdot_inside_a_named_include_path_works(layout):
    p = _task(layout, "../_base.yaml")
    # The task's own folder is tasks/sub, so ../_base.yaml is outside it ...
    _refused(p, "outside the trusted task folders")
    # ... until the user names tasks/ as a task folder (lm-eval's --include_path).
    t = load_template(p, include_roots=IncludeRoots.for_file(p, include_paths=[layout / "tasks"]))
    assert list(t.answer_choices) == ["yes", "no"]


def test_include_in_the_same_folder_works(layout):
    (layout / "tasks" / "sub" / "_b.yaml").write_text("doc_to_choice: ['x', 'y']\n")
    assert list(load_template(_task(layout, "_b.yaml")).answer_choices) == ["x", "y"]


def test_installed_lm_eval_dotdot_includes_work():
    lib = installed_tasks_dir()
    if lib is None:
        pytest.skip("lm-eval is not installed")
    # mmlu's per-subject files include ../_default_template_yaml style files from a parent folder.
    hits = [p for p in sorted(lib.rglob("*.yaml"))[:4000] if "include: ../" in p.read_text(errors="replace")]
    assert hits, "expected lm-eval task files with `include: ../...`"
    from workbench.core.lmeval_yaml import read_task_yaml
    for p in hits[:20]:
        data = read_task_yaml(p, IncludeRoots.for_file(p))
        assert "include" not in data and len(data) > 1


def test_upload_gets_no_server_includes(layout):
    p = _task(layout, "../_base.yaml")
    _refused(p, "not part of this upload", include_roots=IncludeRoots.for_upload([p]))
    q = _task(layout, "_same.yaml", "up.yaml")
    (layout / "tasks" / "sub" / "_same.yaml").write_text("doc_to_choice: ['s', 't']\n")
    _refused(q, "not part of this upload", include_roots=IncludeRoots.for_upload([q]))
    # ... unless the included file came in the same upload.
    t = load_template(q, include_roots=IncludeRoots.for_upload([q, layout / "tasks" / "sub" / "_same.yaml"]))
    assert list(t.answer_choices) == ["s", "t"]


def test_app_import_refuses_server_includes(layout):
    from workbench.app.tab_templates import import_template

    p = _task(layout, str(layout / "outside.yaml"))
    with pytest.raises(Exception) as e:
        import_template(None, str(p), "", None, "", True)
    assert "SECRET-VALUE" not in str(e.value) and "absolute path" in str(e.value)
    # A pasted one-line "path" is YAML text, not a file on the server.
    with pytest.raises(Exception) as e:
        import_template(None, None, str(layout / "outside.yaml"), None, "", True)
    assert "SECRET-VALUE" not in str(e.value)


def test_include_of_a_non_yaml_file_is_a_clear_error(layout):
    (layout / "tasks" / "sub" / "utils.py").write_text("import os\n")
    _refused(_task(layout, "utils.py"), "is not a YAML file")
    (layout / "tasks" / "sub" / "blob.yaml").write_bytes(b"\xff\xfe\x00garbage")
    _refused(_task(layout, "blob.yaml"), "not UTF-8")
    (layout / "tasks" / "sub" / "list.yaml").write_text("- a\n- b\n")
    _refused(_task(layout, "list.yaml"), "not a YAML mapping")
    _refused(_task(layout, "missing.yaml"), "not found")


def test_include_cycle_is_an_error(layout):
    (layout / "tasks" / "sub" / "a.yaml").write_text("include: b.yaml\nx: 1\n")
    (layout / "tasks" / "sub" / "b.yaml").write_text("include: a.yaml\ny: 2\n")
    _refused(_task(layout, "a.yaml"), "include cycle")


def test_editor_text_is_never_opened_as_a_server_path(layout):
    from workbench.app.common import parse_template

    secret = layout / "secret.yaml"
    secret.write_text("name: s\ninput: SECRET-VALUE\n")
    with pytest.raises(TemplateError) as e:   # before: the server file loaded as the template
        parse_template(str(secret))
    assert "SECRET-VALUE" not in str(e.value)
