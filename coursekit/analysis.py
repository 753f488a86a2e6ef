"""Numbers read off training histories, and the French sentences that state them.

Where the test loss bottoms out and whether a run overfits (one explicit rule, see
`overfitting_report`), a comparison table of runs, the learning-rate changes of a run,
and the one rule that calls a difference better, worse or within the noise (`verdict`).
A notebook's written analysis is computed from these instead of typed by hand, so it
stays true whatever the run gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from coursekit.french import fr_num, fr_pct
from coursekit.train import history_frame

REL_TOL = 0.05
MIN_RISE_EPOCHS = 2


def _columns(history: Any) -> dict[str, list[float]]:
    """Return {column: values over the training epochs} of a History or a DataFrame."""
    frame = history_frame(history, training_only=True)
    return {"epoch": [int(e) for e in frame.index], **{c: list(frame[c]) for c in frame.columns}}


def _pick_train_key(columns: Mapping[str, list[float]], train_key: str | None) -> str:
    """Return train_key, or the eval-mode training loss when recorded, else train_loss."""
    if train_key is not None:
        return train_key
    return "train_eval_loss" if "train_eval_loss" in columns else "train_loss"


def overfitting_report(
    history: Any,
    test_key: str = "val_loss",
    train_key: str | None = None,
    rel_tol: float = REL_TOL,
    min_rise_epochs: int = MIN_RISE_EPOCHS,
) -> dict[str, Any]:
    """Return the numbers that say whether and where a run overfits, and the verdict.

    history: a History (or DataFrame indexed by epoch) with `test_key` and `train_key`.
    train_key: defaults to 'train_eval_loss' when recorded (measured in eval mode, like
    the test loss, so the gap compares like with like), else 'train_loss'.

    Rule: the run overfits when (a) the test loss of each of the last `min_rise_epochs`
    epochs or more is above its minimum by more than `rel_tol` (relative), i.e. the
    rise is lasting rather than one noisy epoch, and (b) the training loss is still
    lower at the last epoch than at the epoch of that minimum: the network keeps
    fitting its training set while getting worse on unseen data.

    Keys: best_epoch, min_test_loss, final_test_loss, rise (final - min), rise_rel
    (rise / min), epochs_after_min, epochs_above_tol (trailing epochs above the
    tolerance), train_at_best, final_train_loss, train_still_falling, final_gap
    (final test - final train), gap_ratio (final test / final train), n_epochs,
    rel_tol, min_rise_epochs, train_key, overfits.
    """
    if rel_tol < 0 or min_rise_epochs < 1:
        raise ValueError(
            f"need rel_tol >= 0 and min_rise_epochs >= 1, got {rel_tol} and {min_rise_epochs}"
        )
    cols = _columns(history)
    train_key = _pick_train_key(cols, train_key)
    for key in (test_key, train_key):
        if key not in cols:
            raise KeyError(f"history has no column {key!r}; it has {list(cols)}")
    epochs, test, train = cols["epoch"], cols[test_key], cols[train_key]
    if not epochs:
        raise ValueError("the history has no training epoch to analyse")
    if any(math.isnan(v) for v in test + train):
        raise ValueError(f"{test_key!r} or {train_key!r} has NaN values: cannot judge the curves")
    i_best = min(range(len(test)), key=test.__getitem__)  # first epoch on ties
    best = test[i_best]
    threshold = best * (1 + rel_tol)
    above = 0
    for value in reversed(test):
        if value <= threshold:
            break
        above += 1
    rise = test[-1] - best
    still_falling = train[-1] < train[i_best]
    return {
        "best_epoch": epochs[i_best],
        "min_test_loss": best,
        "final_test_loss": test[-1],
        "rise": rise,
        "rise_rel": rise / best if best > 0 else math.inf if rise > 0 else 0.0,
        "epochs_after_min": epochs[-1] - epochs[i_best],
        "epochs_above_tol": above,
        "train_at_best": train[i_best],
        "final_train_loss": train[-1],
        "train_still_falling": still_falling,
        "final_gap": test[-1] - train[-1],
        "gap_ratio": test[-1] / train[-1] if train[-1] > 0 else math.inf,
        "n_epochs": len(epochs),
        "rel_tol": rel_tol,
        "min_rise_epochs": min_rise_epochs,
        "train_key": train_key,
        "overfits": above >= min_rise_epochs and still_falling,
    }


def overfitting_table(runs: Mapping[str, Any], **kwargs: Any):
    """Return a DataFrame (one row per run label) of `overfitting_report` for each run."""
    rows = {label: overfitting_report(h, **kwargs) for label, h in runs.items()}
    columns = [
        "overfits", "best_epoch", "min_test_loss", "final_test_loss", "rise", "rise_rel",
        "epochs_above_tol", "final_train_loss", "final_gap", "gap_ratio",
    ]  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index")[columns]


def _pct(x: float) -> str:
    """Return a signed percentage with one decimal, e.g. '+12,3 %'."""
    return fr_pct(x, decimals=1, signed=True)


def _of(word: str) -> str:
    """Return "d'entraînement" or "de test": French elision before a vowel."""
    return f"d'{word}" if word[:1].lower() in "aeéèêiîoôuy" else f"de {word}"


def verdict_sentence(
    label: str, report: Mapping[str, Any], train: str = "apprentissage", test: str = "test"
) -> str:
    """Return one French sentence stating the computed verdict of `report` for run `label`.

    train, test: the words a notebook uses for the two sets ('entraînement', 'validation').
    """
    r = report
    where = (
        f"minimum de la loss {_of(test)} ({fr_num(r['min_test_loss'])}) à l'époque "
        f"{r['best_epoch']}"
    )
    tol = _pct(r["rel_tol"]).lstrip("+")
    if r["overfits"]:
        return (
            f"« {label} » : surapprentissage. {where[0].upper()}{where[1:]}, puis remontée de "
            f"{fr_num(r['rise'])} ({_pct(r['rise_rel'])}) jusqu'à l'époque finale, au-dessus de "
            f"la tolérance de {tol} sur les {r['epochs_above_tol']} dernières époques, pendant "
            f"que la loss {_of(train)} continue de baisser ({fr_num(r['train_at_best'])} → "
            f"{fr_num(r['final_train_loss'])})."
        )
    if r["epochs_after_min"] == 0:
        last = r["best_epoch"]
        reason = f"la loss {_of(test)} est encore à son minimum à la dernière époque ({last})"
    elif r["epochs_above_tol"] == 0:
        reason = (
            f"{where}, et la loss finale ne le dépasse que de {_pct(r['rise_rel'])}, "
            f"sous la tolérance de {tol}"
        )
    elif r["epochs_above_tol"] < r["min_rise_epochs"]:
        reason = (
            f"{where} ; la remontée au-delà de {tol} ne dure que {r['epochs_above_tol']} "
            f"époque(s), trop peu pour conclure (il en faut {r['min_rise_epochs']})"
        )
    else:
        reason = (
            f"{where} et remontée de {_pct(r['rise_rel'])}, mais la loss {_of(train)} ne "
            "baisse plus : c'est une dégradation générale (instabilité), pas un apprentissage "
            "par cœur"
        )
    return f"« {label} » : pas de surapprentissage selon la règle : {reason}."


def comparison_sentence(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """Return French sentences: the run with the lowest test loss, the runs ranked by their
    final test - train gap, and which runs overfit by the rule."""
    if not reports:
        raise ValueError("no run to compare")
    lowest = min(reports, key=lambda k: reports[k]["min_test_loss"])
    by_gap = sorted(reports, key=lambda k: reports[k]["final_gap"])
    ranking = ", ".join(f"« {k} » ({fr_num(reports[k]['final_gap'])})" for k in by_gap)
    overfit = [k for k, r in reports.items() if r["overfits"]]
    which = ", ".join(f"« {k} »" for k in overfit) if overfit else "aucune"
    return (
        f"Plus faible loss de test : « {lowest} » ({fr_num(reports[lowest]['min_test_loss'])}, "
        f"époque {reports[lowest]['best_epoch']}). Écart final test − apprentissage, du plus "
        f"petit au plus grand : {ranking}. Expérience(s) en surapprentissage selon la "
        f"règle : {which}."
    )


def train_measurement_sentence(history: Any) -> str:
    """Return a French sentence comparing the training loss measured during vs after each epoch.

    Needs the columns train_loss (mean over the epoch, train mode, weights moving) and
    train_eval_loss (re-measured in eval mode with the end-of-epoch weights).
    """
    cols = _columns(history)
    during, after = cols["train_loss"], cols["train_eval_loss"]
    higher = sum(d > a for d, a in zip(during, after, strict=True))
    ratio = sum(d / a for d, a in zip(during, after, strict=True) if a > 0) / len(during)
    return (
        f"La loss mesurée pendant l'époque est plus élevée que la loss re-mesurée en mode "
        f"évaluation à la fin de l'époque dans {higher} époque(s) sur {len(during)} ; en "
        f"moyenne elle vaut {fr_num(ratio)} fois la loss re-mesurée."
    )


def summary_sentence(label: str, history: Any) -> str:
    """Return a French sentence with a run's final training loss, test loss and test accuracy."""
    cols = _columns(history)
    text = (
        f"« {label} » après {cols['epoch'][-1]} époque(s) : loss d'apprentissage "
        f"{fr_num(cols['train_loss'][-1])} (moyenne pendant l'époque)"
    )
    if "train_eval_loss" in cols:
        text += f", {fr_num(cols['train_eval_loss'][-1])} (re-mesurée en mode évaluation)"
    text += f", loss de test {fr_num(cols['val_loss'][-1])}"
    if "val_acc" in cols:
        text += f", accuracy de test {fr_pct(cols['val_acc'][-1])}"
    return text + "."


def run_summary(history: Any) -> dict[str, Any]:
    """Return the headline numbers of one run.

    Keys: epochs (run), stopped (why), best_epoch (lowest val_loss), best_val_loss,
    final_val_loss, best_val_acc, final_val_acc, final_train_acc (re-measured in eval mode
    when the run recorded train_eval_acc, else the mean during the last epoch: see
    train_acc_measured), acc_gap (final train accuracy - final val accuracy), seconds.
    """
    df = history_frame(history, training_only=True)
    if df.empty:
        raise ValueError("the history has no training epoch")
    last = df.iloc[-1]
    # Measured in eval mode after the epoch when recorded: with dropout on, the accuracy
    # measured during the epoch understates what the network knows of its training set.
    train_acc = "train_eval_acc" if "train_eval_acc" in df else "train_acc"
    return {
        "epochs": int(df.index[-1]),
        "stopped": getattr(history, "stopped_reason", ""),
        "best_epoch": int(df["val_loss"].idxmin()),
        "best_val_loss": float(df["val_loss"].min()),
        "final_val_loss": float(last["val_loss"]),
        "best_val_acc": float(df["val_acc"].max()),
        "final_val_acc": float(last["val_acc"]),
        "final_train_acc": float(last[train_acc]),
        "acc_gap": float(last[train_acc] - last["val_acc"]),
        "train_acc_measured": "eval" if train_acc == "train_eval_acc" else "during epoch",
        "seconds": float(df["seconds"].sum()) if "seconds" in df else math.nan,
    }


def compare_runs(runs: Mapping[str, Any], reference: str | None = None) -> pd.DataFrame:
    """Return one row of `run_summary` per run (label -> History), indexed by label.

    reference: label of the run the others are compared with; adds the column
    d_final_val_acc (final val accuracy minus the reference's).
    """
    table = pd.DataFrame({label: run_summary(h) for label, h in runs.items()}).T
    numeric = [c for c in table.columns if c not in ("stopped", "train_acc_measured")]
    table[numeric] = table[numeric].apply(pd.to_numeric)
    table[["epochs", "best_epoch"]] = table[["epochs", "best_epoch"]].astype(int)
    if reference is not None:
        if reference not in table.index:
            raise KeyError(f"reference {reference!r} is not one of the runs {list(table.index)}")
        table["d_final_val_acc"] = table["final_val_acc"] - table.loc[reference, "final_val_acc"]
    table.index.name = "run"
    return table


def lr_changes(history: Any) -> list[tuple[int, float, float]]:
    """Return [(epoch, old lr, new lr)] for each epoch that started with a different LR.

    `lr` is recorded at the start of each epoch, so a scheduler step after epoch e shows
    as a change at epoch e + 1.
    """
    df = history_frame(history, training_only=True)
    lrs = list(df["lr"])
    epochs = [int(e) for e in df.index]
    return [
        (epochs[i], lrs[i - 1], lrs[i])
        for i in range(1, len(lrs))
        if not math.isclose(lrs[i], lrs[i - 1], rel_tol=1e-9)
    ]


def reduced_lr_epochs(history: Any) -> list[int]:
    """Return the epochs that started with a learning rate below the first epoch's.

    `history`: a History, or any epoch-indexed DataFrame with an `lr` column (such as the
    replay of `coursekit.fashion.lesson.replay_patience`).
    """
    df = history_frame(history, training_only=True)
    first = float(df["lr"].iloc[0])
    return [int(e) for e in df.index[df["lr"] < first * (1 - 1e-9)]]


def reduced_lr_report(history: Any) -> dict[str, Any]:
    """Return how a run used its reduced learning rates.

    Keys: initial_lr, final_lr, n_changes, first_change_epoch (None if none),
    epochs_at_reduced_lr (epochs that started below the initial LR), epochs,
    best_epoch (lowest val_loss), best_after_reduction (that best epoch ran at a
    reduced LR).
    """
    df = history_frame(history, training_only=True)
    changes = lr_changes(history)
    best_epoch = int(df["val_loss"].idxmin())
    return {
        "initial_lr": float(df["lr"].iloc[0]),
        "final_lr": float(df["lr"].iloc[-1]),
        "n_changes": len(changes),
        "first_change_epoch": changes[0][0] if changes else None,
        "epochs_at_reduced_lr": len(reduced_lr_epochs(df)),
        "epochs": int(df.index[-1]),
        "best_epoch": best_epoch,
        "best_after_reduction": best_epoch in reduced_lr_epochs(df),
    }


def collapsed(history: Any, num_classes: int = 10, tol: float = 0.05) -> bool:
    """Return True if the run ended predicting no better than chance.

    That is: its last training loss is within `tol` (relative) of ln(num_classes), the
    cross-entropy of a uniform guess, and its last val accuracy is at most 1.5 / num_classes
    (what happens when a too large step kills every ReLU).
    """
    last = history_frame(history, training_only=True).iloc[-1]
    uniform = math.log(num_classes)
    return bool(last["train_loss"] >= (1 - tol) * uniform and last["val_acc"] <= 1.5 / num_classes)


def first_collapsed_epoch(history: Any, num_classes: int = 10, tol: float = 0.05) -> int | None:
    """Return the first epoch after which the run stayed collapsed to the end, or None."""
    df = history_frame(history, training_only=True)
    dead = [collapsed(df.loc[[e]], num_classes, tol) for e in df.index]
    if not dead or not dead[-1]:
        return None
    first = len(dead) - 1
    while first > 0 and dead[first - 1]:
        first -= 1
    return int(df.index[first])


VERDICTS = ("mieux", "moins bien", "indiscernable")


def verdict(delta: float, band: float) -> str:
    """Return 'mieux', 'moins bien' or 'indiscernable': the workbook's one comparison rule.

    delta: a score minus the reference's (higher is better); band: the half-width of the
    noise on delta. 'mieux' iff delta > band, 'moins bien' iff delta < -band, else
    'indiscernable': a difference that noise alone could produce, edges included, is not
    reported as a gain or a loss.
    """
    if not band >= 0:  # also refuses NaN: an unknown noise gives no verdict
        raise ValueError(f"the noise band is a half-width >= 0, got {band}")
    if delta > band:
        return "mieux"
    if delta < -band:
        return "moins bien"
    return "indiscernable"


def bootstrap_band(values: Sequence[float], n_boot: int = 2000, z: float = 1.96, seed: int = 0,
                   drop_nan: bool = False) -> float:  # fmt: skip
    """Return the noise band (half-width) of the mean of `values`: z x its bootstrap SE.

    values: one number per item (image, sequence, pair: often paired differences). NaN is an
    error unless drop_nan (then a missing score is left out). With fewer than 2 values the
    noise is unknown: an infinite band, so that `verdict` calls every difference
    'indiscernable'.
    """
    v = np.asarray(values, dtype=float)
    if drop_nan:
        v = v[~np.isnan(v)]
    elif np.isnan(v).any():
        raise ValueError("values hold NaN: score every item, or pass drop_nan=True to leave "
                         "missing scores out")  # fmt: skip
    if len(v) < 2:
        return float("inf")
    rng = np.random.default_rng(seed)
    return float(z * v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1).std())


def accuracy_band(acc: float, ref: float, n: int, z: float = 1.96) -> float:
    """Return the half-width of the noise band of `acc - ref`, two accuracies on n images.

    Each accuracy is a proportion over n images, with binomial standard error
    sqrt(p (1 - p) / n); treating the two as independent gives a slightly wide (so
    cautious) band for the difference: z * sqrt(se1^2 + se2^2), 95 % for z = 1.96.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    var = (acc * (1 - acc) + ref * (1 - ref)) / n
    return z * math.sqrt(var)


def compare_to_reference(acc: float, ref: float, n: int, z: float = 1.96) -> dict[str, Any]:
    """Return {'delta', 'band', 'verdict'}: `verdict(acc - ref, band)` with the noise band
    of `accuracy_band`, so a difference that sampling alone could produce is not reported
    as a gain or a loss."""
    delta, band = acc - ref, accuracy_band(acc, ref, n, z)
    return {"delta": delta, "band": band, "verdict": verdict(delta, band)}


def stability_report(history: Any, n_val: int) -> dict[str, Any]:
    """Return how steadily a run trained: collapse, training-loss rises, final vs best accuracy.

    Keys: collapsed, first_collapsed_epoch, loss_rises (epochs whose mean training loss is
    above the previous epoch's), epochs, best_val_acc, final_val_acc, final_vs_best (the
    `compare_to_reference` of final against best accuracy on n_val images), unstable
    (collapsed, or final accuracy below the best beyond noise, or the training loss rose
    in more than a quarter of the epochs).
    """
    df = history_frame(history, training_only=True)
    losses = list(df["train_loss"])
    rises = sum(b > a for a, b in zip(losses, losses[1:], strict=False))
    best, final = float(df["val_acc"].max()), float(df["val_acc"].iloc[-1])
    versus = compare_to_reference(final, best, n_val)
    dead = first_collapsed_epoch(history)
    return {
        "collapsed": dead is not None,
        "first_collapsed_epoch": dead,
        "loss_rises": rises,
        "epochs": len(losses),
        "best_val_acc": best,
        "final_val_acc": final,
        "final_vs_best": versus,
        "unstable": (
            dead is not None or versus["verdict"] == "moins bien" or rises > len(losses) / 4
        ),
    }


def curve_shape(values: list[float], epochs: list[int]) -> dict[str, Any]:
    """Return the shape of a loss curve: first, last, min, where half the fall was done.

    Keys: first, last, min, min_epoch, fall (first - last), half_fall_epoch (first epoch
    whose value is at most first - fall / 2; None if the curve did not fall), last_step_rel
    (relative change over the last epoch).
    """
    if not values:
        raise ValueError("no value to describe")
    first, last = values[0], values[-1]
    fall = first - last
    half = next((e for e, v in zip(epochs, values, strict=True) if v <= first - fall / 2), None)
    i_min = min(range(len(values)), key=values.__getitem__)
    step = (values[-1] - values[-2]) / values[-2] if len(values) > 1 and values[-2] else 0.0
    return {
        "first": first, "last": last, "min": values[i_min], "min_epoch": epochs[i_min],
        "fall": fall, "half_fall_epoch": half if fall > 0 else None, "last_step_rel": step,
    }


def shape_sentence(history: Any, key: str, what: str) -> str:
    """Return a French sentence describing the computed shape of column `key` ('what' names it)."""
    cols = _columns(history)
    shape = curve_shape(cols[key], cols["epoch"])
    text = (
        f"{what[0].upper()}{what[1:]} : {fr_num(shape['first'])} à l'époque {cols['epoch'][0]}, "
        f"{fr_num(shape['last'])} à la dernière ({cols['epoch'][-1]}), minimum "
        f"{fr_num(shape['min'])} à l'époque {shape['min_epoch']}"
    )
    if shape["half_fall_epoch"] is None:
        return text + " ; elle n'a pas baissé entre la première et la dernière époque."
    return (
        f"{text} ; la moitié de la baisse est faite dès l'époque {shape['half_fall_epoch']}, "
        f"et la dernière époque la change de {_pct(shape['last_step_rel'])}."
    )
