"""Progress from the core (issue 16, item 8): every stage of an evaluation reports real counts
(prompts built, rows scored) that only go up and end at the right total;
a comparison's overall count only goes forward and leaves reused templates out; the ETA is
steady on bursty batches; the CLI's bar shows the build stage. A fake session scores in batches
like the real one, so these run without a model."""
from __future__ import annotations

import io

import pytest
from support.fakes import FakeSession

from workbench.core.config import EvalConfig
from workbench.core.progress import Nested, SteadyEta, stage_text, staged
from workbench.core.templates import load_template

LIB = "templates_library"


def BatchSession(batch: int = 7) -> FakeSession:
    """Deterministic pseudo log-likelihoods, reporting (done requests, total requests) after each
    batch of `batch` requests, as the prefix-tree scorer does."""
    return FakeSession("fake@1", batch=batch)


@pytest.fixture(scope="module")
def topic():
    return load_template(f"{LIB}/bbc_headline_topic.yaml")


@pytest.fixture(scope="module")
def question():
    return load_template(f"{LIB}/bbc_headline_question.yaml")


def _stages(ticks):
    """[(stage, [(done, total), ...]), ...] in the order the stages came."""
    out = []
    for done, total, stage in ticks:
        if not out or out[-1][0] != stage:
            out.append((stage, []))
        out[-1][1].append((done, total))
    return out


def _check_stage(counts, total):
    dones = [d for d, _ in counts]
    assert all(t == total for _, t in counts), counts
    assert dones[0] == 0 and dones[-1] == total, dones
    assert dones == sorted(dones), dones                       # never goes back
    assert len(set(dones)) > 2, dones                           # real counts in between, not 0 then the end


@pytest.mark.parametrize("shots,calibration", [(0, "none"), (2, "contextual"), (1, "pmi")])
def test_evaluate_reports_every_stage_with_real_counts(bbc, topic, shots, calibration):
    from workbench.jobs.inference import evaluate

    ticks = []
    cfg = EvalConfig(limit=30, shots=shots, calibration=calibration, sampling="per_example" if shots else "fixed")
    res = evaluate(topic, bbc, BatchSession(), cfg, progress=lambda d, t, s: ticks.append((d, t, s)))
    stages = _stages(ticks)
    names = [s for s, _ in stages]
    # calibration's requests are scored in the same call as the rows' (their prefixes are
    # shared), so they count within "scoring"
    assert names == ["building prompts", "scoring"]
    _check_stage(stages[0][1], 30)                              # prompts built / rows
    _check_stage(stages[-1][1], 30)                             # rows scored / rows (not requests)
    assert res.metrics["n"] == 30


def test_two_argument_callbacks_still_work(bbc, topic):
    from workbench.jobs.inference import evaluate

    ticks = []
    evaluate(topic, bbc, BatchSession(), EvalConfig(limit=10), progress=lambda d, t: ticks.append((d, t)))
    assert ticks[-1] == (10, 10)
    assert staged(None) is None


def test_compare_overall_count_moves_forward_and_skips_reused(bbc, topic, question):
    from workbench.jobs.compare import compare_templates
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry()
    cfg = EvalConfig(limit=20, shots=1)
    ticks = []
    compare_templates([topic, question], bbc, BatchSession(), cfg, registry=reg, n_boot=100,
                      progress=lambda d, t, m="": ticks.append((d, t, m)))
    dones = [d for d, _, _ in ticks]
    assert dones == sorted(dones) and {t for _, t, _ in ticks} == {2000}
    msgs = [m for _, _, m in ticks]
    assert any(f"{topic.name} (1/2) · building prompts" in m for m in msgs)
    assert f"{question.name} (2/2) · scoring 20/20 rows" in msgs
    assert any("scoring 7/20 rows" in m or "scoring 8/20 rows" in m for m in msgs)   # counts in between
    # The same comparison again: both templates reused, nothing counted as scored work.
    ticks.clear()
    compare_templates([topic, question], bbc, BatchSession(), cfg, registry=reg, n_boot=100,
                      progress=lambda d, t, m="": ticks.append((d, t, m)))
    assert ticks == [(1000, 1000, "statistics")]


def test_nested_maps_stages_onto_one_forward_count():
    ticks = []
    n = Nested(lambda d, t, m: ticks.append((d, t, m)), 1, 2, "T (2/2)")
    for stage in ("building prompts", "scoring"):
        for d in range(0, 11, 5):
            n(d, 10, stage)
    dones = [d for d, _, _ in ticks]
    assert dones == sorted(dones) and dones[0] == 1000 and dones[-1] == 2000
    assert ticks[-1][2] == "T (2/2) · scoring 10/10 rows"
    assert stage_text("building prompts", 3, 12) == "building prompts 3/12"


def _bursty(rate_s, batch_s, n_batches, rows_per_batch, sample_every=0.5):
    """Shown ETAs, sampled every `sample_every` s, for batches of alternating lengths; also the
    ETA a per-tick rate (the last batch's) would show."""
    eta, shown, naive = SteadyEta(), [], []
    total = n_batches * rows_per_batch
    t, done = 0.0, 0
    eta.update(0, total, now=0.0)
    for b in range(n_batches):
        dt = batch_s[b % len(batch_s)]
        end = t + dt
        s = t + sample_every
        while s < end:
            shown.append((s, eta.eta(now=s)))
            s += sample_every
        t, done = end, done + rows_per_batch
        eta.update(done, total, now=t)
        naive.append((total - done) * dt / rows_per_batch)
    return shown, naive


def test_eta_is_steady_on_bursty_batches():
    """Batches of 10 rows take 0.5 s and 3.5 s in turn (mean 2 s): the true time left falls by
    1 s a second. The rate over the whole count gives an ETA that moves with the clock (the
    per-tick rate would swing between far too low and far too high)."""
    shown, naive = _bursty(None, [0.5, 3.5], 20, 10)
    vals = [(s, e) for s, e in shown if e is not None]
    assert vals, "an ETA appears once a second of work has been seen"
    late = [(s, e) for s, e in vals if s > 8]            # after a few batches
    jumps = [abs((e1 - e0) + (s1 - s0)) for (s0, e0), (s1, e1) in zip(late, late[1:])]
    assert max(jumps) < 2.0                                # at most ~2 s off the clock per sample (per-tick: 50 s)
    for s, e in late:
        true_left = 40.0 - s
        assert abs(e - true_left) < 0.25 * true_left + 2.5, (s, e, true_left)
    assert max(naive) / max(1e-9, min(n for n in naive[4:-4] if n)) > 3   # what the per-tick rate did


def test_eta_restarts_with_a_new_count_and_waits_for_a_rate():
    eta = SteadyEta()
    eta.update(0, 100, now=0.0)
    eta.update(10, 100, now=0.5)
    assert eta.eta(now=0.5) is None                        # half a second is no rate yet
    eta.update(20, 100, now=2.0)
    assert eta.eta(now=2.0) == pytest.approx(8.0)          # 80 left at 10/s
    assert eta.eta(now=5.0) == pytest.approx(5.0)          # counts down between ticks
    eta.update(0, 50, now=6.0)                             # the next stage: a new count
    assert eta.eta(now=6.0) is None


def test_job_status_eta_comes_from_the_steady_estimator(monkeypatch):
    from workbench.jobs.queue import Job, JobContext

    now = [100.0]
    monkeypatch.setattr("workbench.core.progress.time.monotonic", lambda: now[0])
    job = Job(id="eval-x", kind="eval", resource=None, state="running")
    ctx = JobContext(job)
    ctx.progress(0, 1000, "T · building prompts 0/40")
    now[0] += 4
    ctx.progress(400, 1000, "T · scoring 10/40 rows")
    assert job.to_status()["eta_s"] == pytest.approx(6.0)
    now[0] += 2
    assert job.to_status()["eta_s"] == pytest.approx(4.0)


def test_cli_bar_shows_the_build_stage(bbc, topic, monkeypatch):
    from workbench.commands.progress import CliProgress
    from workbench.jobs.inference import evaluate

    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    bar = CliProgress(topic.name)
    try:
        evaluate(topic, bbc, BatchSession(), EvalConfig(limit=12), progress=bar)
    finally:
        bar.close()
    text = err.getvalue()
    assert "building prompts" in text and "12/12" in text
    assert "scoring" in text and "rows" in text


def test_cli_bar_takes_messages_and_restarts_when_the_count_goes_back(monkeypatch):
    """The one CLI bar: a free message (a comparison's or training's text) shows after the bar,
    the total can change, and a count that goes back (the next nested job) starts a new bar."""
    from workbench.commands.progress import CliProgress

    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    bar = CliProgress("compare")
    bar(0, 100, "topic (1/2) · scoring 0/50 rows")
    bar(100, 100, "topic (1/2) · scoring 50/50 rows")
    first = bar.bar
    bar(10, 80, "loose (2/2) · scoring 5/40 rows")    # back to a lower count, a new total
    assert bar.bar is not first and bar.bar.total == 80 and bar.bar.n == 10
    bar(80, 80, "loose (2/2) · scoring 40/40 rows")
    bar.close()
    text = err.getvalue()
    assert "topic (1/2)" in text and "loose (2/2) · scoring 40/40 rows" in text and "80/80" in text
