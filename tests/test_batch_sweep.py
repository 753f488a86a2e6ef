"""Sweeps: worker processes share one Optuna study and its trial budget through the storage."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from coursekit.batch.cli import main
from coursekit.batch.sweep import sweep
from coursekit.tuning import StudyError, _within_budget, open_study, storage_for

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


def test_storage_kinds(tmp_path):
    assert storage_for(None) is None
    assert isinstance(storage_for(tmp_path / "a.db"), optuna.storages.RDBStorage)
    assert isinstance(storage_for(tmp_path / "nfs" / "a.log"), optuna.storages.JournalStorage)
    assert storage_for("postgresql://host/db") == "postgresql://host/db"


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
