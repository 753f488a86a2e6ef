import json

import pytest

from coursekit.profiles import durations_sentence, profile_values, recorded_times, times_file

TABLE = {"séance": {"epochs": 3, "subset": 10_000}, "complet": {"epochs": 14, "subset": None}}


def test_the_profile_fills_what_is_not_given(capsys):
    assert profile_values("séance", TABLE, epochs=None, subset=None) == (3, 10_000)
    assert profile_values("complet", TABLE, subset=None, epochs=None) == (None, 14)  # given order
    assert "profil « complet »" in capsys.readouterr().out


def test_an_explicit_value_always_wins(capsys):
    assert profile_values("séance", TABLE, epochs=7, subset=None) == (7, 10_000)
    assert "donnés explicitement (priorité sur le profil) : epochs" in capsys.readouterr().out
    assert profile_values("complet", TABLE, epochs=0, subset=5, verbose=False) == (0, 5)


def test_unknown_profile_or_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="profil 'rapide' inconnu : choisir parmi séance, complet"):
        profile_values("rapide", TABLE, epochs=None)
    with pytest.raises(KeyError, match="lr"):
        profile_values("séance", TABLE, lr=None)


def test_recorded_durations_are_read_back_in_french(tmp_path):
    assert recorded_times("01_x", tmp_path) == {}
    assert "pas encore mesurée" in durations_sentence("01_x", tmp_path)
    record = {"séance": {"seconds": 754.0, "machine": "CPU 2 cœurs", "data": "MNIST réel",
                         "date": "2026-12-06"}}
    times_file("01_x", tmp_path).write_text(json.dumps(record))
    sentence = durations_sentence("01_x", tmp_path)
    assert "profil « séance » : 13 min (CPU 2 cœurs, MNIST réel, 2026-12-06)" in sentence
    assert "complet" not in sentence
