"""What an export bundles: the editor's (or a file's) template, the latest marked comparison winner (or a
given one), or a training run's adapter with its template. One resolution for the Export tab and
`workbench export`: it returns the templates and options build_spec takes, so both doors build one spec.
(It reads the run registry and template files, so it lives in jobs/, not in core/spec.py.)"""
from __future__ import annotations

from pathlib import Path

from workbench.errors import ConfigError


def export_source(template=None, *, train_run: str | None = None, winner: str | bool | None = None) -> tuple[list, dict]:
    """(templates, options) of an export. `train_run`: a run folder with a saved adapter; `winner`: True for the
    latest marked winner, or a comparison's run id; else `template` (what build_spec takes: an object,
    (object, path) or a path)."""
    from workbench.core.templates import load_template

    if train_run:
        ad = Path(train_run) / "adapter" / "template.yaml"
        if not ad.exists():
            raise ConfigError(f"Training run {Path(train_run).name} has no saved adapter yet ({ad} is missing).",
                              hint="Wait for it to save one, or pick a finished run under $WORKBENCH_HOME/train.")
        return [load_template(ad)], {"train_run": str(train_run)}
    if winner is not None and winner is not False:
        from workbench.jobs.compare import get_winner_info

        run_id = winner if isinstance(winner, str) and winner else None
        info = get_winner_info(run_id)
        if info is None:
            raise ConfigError("No comparison has a marked winner" + (f" (run {run_id})" if run_id else "") + ".",
                              hint="Mark one in the Compare tab, or export a template.")
        return [load_template(info["yaml"])], {"winner": run_id or True}
    if template is None:
        raise ConfigError("Nothing to export.", hint="Give a template, a marked winner or a training run.")
    return [template], {}
