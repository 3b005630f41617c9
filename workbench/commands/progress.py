"""The command line's one progress bar: `progress(done, total, text)` drawn with tqdm on stderr.

Every job reports through the same callback, but the third argument means one of two things: a
stage name from core/progress.py ("building prompts", "scoring": each counts from 0 in its own
unit), or a free message ("topic (2/3) · scoring 40/100 rows", "loss 1.93"). A stage titles its
own bar and gives it a unit; a message is shown after the bar. A count that goes back (a new
stage, a new nested job) starts a new bar, so no bar ever runs backwards."""
from __future__ import annotations

import sys


class CliProgress:
    def __init__(self, desc: str, unit: str = "it"):
        self.desc = desc
        self.unit = unit
        self.bar = None
        self.stage: str | None = None

    def __call__(self, done: int, total: int, text: str = "") -> None:
        from tqdm import tqdm

        from workbench.core.progress import STAGE_UNITS

        stage = text if text in STAGE_UNITS else None
        if self.bar is None or (stage is not None and stage != self.stage) or done < self.bar.n:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{self.desc} · {stage}" if stage else self.desc,
                            unit=STAGE_UNITS.get(stage or "", "") or self.unit, file=sys.stderr, dynamic_ncols=True)
        if total != self.bar.total:   # e.g. reused templates are left out of a comparison's count
            self.bar.total = total
        if text and stage is None:
            self.bar.set_postfix_str(text[:60], refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
