"""Sweeps: worker processes share one Optuna study and its trial budget through the storage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from coursekit.batch.cli import main
from coursekit.batch.sweep import sweep
from coursekit.tuning import (
    HEARTBEAT_S,
    StudyError,
    _within_budget,
    open_study,
    run_trials,
    storage_for,
    taken_trials,
)

# Each trial waits until two worker processes have started one, so the test proves the
# trials were shared rather than all run by whichever worker started first.
OBJECTIVE = """
import os
import time
from pathlib import Path

MARKS = Path(__file__).with_name("marks")


def objective(trial):
    MARKS.mkdir(exist_ok=True)
    (MARKS / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(MARKS.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    trial.set_user_attr("pid", os.getpid())
    x = trial.suggest_float("x", -5, 5)
    time.sleep(0.05)
    return (x - 1) ** 2
"""


@pytest.fixture
def objective_module(tmp_path: Path, monkeypatch) -> str:
    module = tmp_path / "sweep_objective_for_tests.py"
    module.write_text(textwrap.dedent(OBJECTIVE))
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned workers inherit sys.path
    return "sweep_objective_for_tests:objective"


@pytest.mark.parametrize("storage_name", ["study.db", "study.journal"])
def test_two_workers_share_the_trial_budget(tmp_path, objective_module, storage_name):
    storage = tmp_path / "studies" / storage_name
    study = sweep(objective_module, study="shared", storage=storage, trials=12, workers=2)

    trials = open_study("shared", storage).get_trials(deepcopy=False)
    ran = [t for t in trials if not t.user_attrs.get("over_budget")]
    assert sorted(t.number for t in ran) == list(range(12))  # each number once, none missing
    assert all(t.state == TrialState.COMPLETE for t in ran)
    assert len({t.user_attrs["pid"] for t in ran}) == 2  # both workers ran trials
    assert len(study.trials) == len(trials)


def test_a_later_sweep_on_the_same_study_only_tops_it_up(tmp_path):
    storage = tmp_path / "demo.journal"
    sweep("coursekit.batch.sweep:demo_objective", study="demo", storage=storage, trials=3)
    study = sweep("coursekit.batch.sweep:demo_objective", study="demo", storage=storage, trials=5)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    again = sweep("coursekit.batch.sweep:demo_objective", study="demo", storage=storage, trials=5)
    assert len(again.trials) == 5


def test_a_trial_beyond_the_budget_is_pruned_without_running(tmp_path):
    study = open_study("race", tmp_path / "race.db")
    for _ in range(3):
        study.ask()  # three trials taken by other workers
    calls = []
    study.optimize(_within_budget(lambda t: calls.append(t.number) or 0.0, budget=3), n_trials=5)
    late = study.trials[3:]  # one trial only: the guard also stops this worker
    assert calls == [] and [t.state for t in late] == [TrialState.PRUNED]
    assert late[0].user_attrs == {"over_budget": True}


def test_storage_kinds_all_keep_a_heartbeat(tmp_path):
    assert storage_for(None) is None
    db = storage_for(tmp_path / "a.db")
    url = storage_for(f"sqlite:///{tmp_path / 'b.db'}")
    journal = storage_for(tmp_path / "nfs" / "a.log")
    assert isinstance(db, optuna.storages.RDBStorage) and isinstance(url, type(db))
    assert isinstance(journal, optuna.storages.JournalStorage)
    for storage in (db, url, journal):
        assert storage.get_heartbeat_interval() == HEARTBEAT_S


# A worker as an OAR job runs it: its one trial sleeps until the walltime kills the job.
DOOMED_WORKER = """
import sys, time
from coursekit.tuning import open_study, run_trials

def objective(trial):
    trial.suggest_float("x", -5, 5)
    time.sleep(600)
    return 0.0

run_trials(open_study("killed", sys.argv[1]), objective, 3)
"""


@pytest.mark.parametrize("storage_name", ["study.db", "study.journal"])
def test_a_killed_workers_trial_is_failed_and_run_again(tmp_path, monkeypatch, storage_name):
    storage = tmp_path / storage_name
    open_study("killed", storage)  # created once, before two processes open it (as sweep does)
    worker = subprocess.Popen([sys.executable, "-c", DOOMED_WORKER, str(storage)])
    try:
        deadline = time.monotonic() + 60
        running = (TrialState.RUNNING,)
        while not any(t.params for t in open_study("killed", storage).get_trials(states=running)):
            assert time.monotonic() < deadline and worker.poll() is None, "no trial started"
            time.sleep(0.1)
    finally:
        worker.kill()  # SIGKILL, as OAR does at the walltime: no cleanup runs
        worker.wait()
    (doomed,) = open_study("killed", storage).get_trials()
    assert doomed.state == TrialState.RUNNING  # left behind, and counted by the budget

    monkeypatch.setattr("coursekit.tuning.GRACE_S", 1)  # instead of waiting two minutes
    # SQLite's clock (CURRENT_TIMESTAMP) counts whole seconds: after 2.5 s the heartbeat is
    # at least 2 s old on it, so the trial is stale at the first check, not at a later one.
    time.sleep(2.5)
    restarted = open_study("killed", storage)  # a new job on the same study
    assert run_trials(restarted, lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, 3) == 3

    trials = open_study("killed", storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3
    retry = trials[1]  # queued again first, with the same parameters
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == doomed.params
    assert taken_trials(restarted) == 3


def test_open_study_refuses_a_direction_change(tmp_path):
    open_study("s", tmp_path / "s.db", direction="maximize")
    with pytest.raises(StudyError, match="was created to maximize"):
        open_study("s", tmp_path / "s.db", direction="minimize")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["coursekit.batch.sweep"], "is not MODULE:FUNCTION"),
        (["no_such_module_xyz:f"], "cannot import 'no_such_module_xyz'"),
        (["coursekit.batch.sweep:nothing"], "has no function 'nothing'"),
        (["coursekit.batch.sweep:demo_objective", "--trials", "0"], "must be at least 1"),
        (["coursekit.batch.sweep:demo_objective", "--pruner", "none"], None),
    ],
)
def test_cli_sweep(tmp_path, capsys, argv, expected):
    base = ["sweep", "--study", "cli", "--storage", str(tmp_path / "cli.db"), "--trials", "2"]
    code = main(base[:1] + argv[:1] + base[1:] + argv[1:])
    captured = capsys.readouterr()
    if expected is None:
        assert code == 0 and "study cli: 2 complete" in captured.out
    else:
        assert code == 1 and expected in captured.err
