import matplotlib

matplotlib.use("Agg")
import optuna  # noqa: E402

from coursekit.optuna_plots import param_importances, study_figures  # noqa: E402


def toy_study(n: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        c = trial.suggest_categorical("c", ["a", "b"])
        for epoch in range(1, 4):
            trial.report(x * epoch, epoch)
        return x + 0.01 * (c == "a")

    study.optimize(objective, n_trials=n)
    return study


def test_figures_and_importances_without_plotly_or_sklearn(tmp_path):
    study = toy_study(20)
    figures = study_figures(study)
    assert set(figures) == {"history", "intermediate", "importances"}
    assert figures["intermediate"].axes[0].get_legend() is None  # 20 trials: no legend
    for name, fig in figures.items():
        fig.savefig(tmp_path / f"{name}.png")
    importances = param_importances(study)
    assert set(importances) == {"x", "c"} and max(importances, key=importances.get) == "x"


def test_one_complete_trial_has_no_importance_yet():
    study = toy_study(1)
    assert param_importances(study) == {}
    assert "importances" not in study_figures(study)
