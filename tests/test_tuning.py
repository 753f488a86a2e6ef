from coursekit.tuning import param_importances


def test_importances_without_sklearn(toy_study):
    importances = param_importances(toy_study(20))
    assert set(importances) == {"x", "c"} and max(importances, key=importances.get) == "x"


def test_one_complete_trial_has_no_importance_yet(toy_study):
    assert param_importances(toy_study(1)) == {}
