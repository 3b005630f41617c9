"""`workbench import`: read a bundle (folder or .zip), an lm-eval task YAML or a PromptSource
YAML into your template folder ($WORKBENCH_HOME/templates), where the Templates tab lists it.

    workbench import out/best
    workbench import my_task.yaml
    workbench import promptsource/templates.yaml --name "which topic"

Bundles are checked against their manifest first. An identical template already there is
kept; a different one with the same name needs --overwrite.
"""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("import", help="import a bundle, lm-eval YAML or PromptSource YAML as templates",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a bundle folder or .zip, an lm-eval task YAML or a PromptSource templates.yaml")
    p.add_argument("--name", default=None, help="import only this template (PromptSource files hold several)")
    p.add_argument("--overwrite", action="store_true", help="replace a different template of the same name")
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.jobs.export import import_path

    for path in import_path(args.path, overwrite=args.overwrite, name=args.name):
        print(path)
    return 0
