"""Spoken digits: both layouts, WAV reading and its errors, resampling, features cache,
speaker splits, and the FSDD download's checksum and safe extraction (local archives)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torchaudio

from coursekit.audio import data as audio
from coursekit.audio.data import (
    MelConfig,
    audio_table,
    check_wav_header,
    find_recordings,
    fit_length,
    leave_one_speaker_out,
    load_waveforms,
    logmel,
    logmel_features,
    mel_frequencies,
    parse_name,
    power_to_db,
    random_split,
    read_wav,
    shared_speakers,
    speaker_split,
)
from coursekit.audio.download import download_fsdd, extract_recordings, verify_archive
from coursekit.audio.fixtures import (
    AUDIO_FIXTURE_INDICES,
    AUDIO_SPEAKERS,
    audio_fixture_names,
    write_fsdd_fixture,
)
from coursekit.audio.fixtures import ensure_fsdd_fixture as ensure_fixtures
from coursekit.audio.formats import FSDD_ARCHIVE
from coursekit.data.errors import ChecksumError, DatasetFormatError, DatasetMissingError

N_FIXTURE = len(AUDIO_SPEAKERS) * 10 * AUDIO_FIXTURE_INDICES


@pytest.fixture(scope="module")
def fsdd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a root holding only the FSDD-layout audio fixture (read-only for the tests)."""
    root = tmp_path_factory.mktemp("fsdd")
    write_fsdd_fixture(root)
    return root


@pytest.fixture
def recordings(fsdd_root: Path, tmp_path: Path) -> Path:
    """Return a writable copy of the fixture's recordings folder (a 'real' FSDD folder)."""
    folder = tmp_path / "AudioMNIST" / "recordings"
    shutil.copytree(fsdd_root / "fsdd" / "recordings", folder)
    return folder


def wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def sine(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def write_audiomnist(root: Path, speakers=("01", "02"), digits=(0, 3), reps=2) -> Path:
    """Write a tiny AudioMNIST layout (data/NN/{digit}_{NN}_{rep}.wav at 48 kHz)."""
    for s in speakers:
        folder = root / "data" / s
        folder.mkdir(parents=True)
        for d in digits:
            for r in range(reps):
                seconds = 0.3 + 0.1 * r
                (folder / f"{d}_{s}_{r}.wav").write_bytes(
                    wav_bytes(sine(300 + 100 * d, 48000, seconds), 48000)
                )
    (root / "data" / "audioMNIST_meta.txt").write_text("{}")  # the real repo has one
    return root


# --- names and layouts -------------------------------------------------------------------


def test_parse_name_reads_both_layouts():
    assert parse_name("7_jackson_32.wav") == (7, "jackson", 32)
    assert parse_name("0_george_0.wav") == (0, "george", 0)
    assert parse_name("9_60_49.wav") == (9, "60", 49)  # AudioMNIST: speaker 60, repetition 49


@pytest.mark.parametrize("name", ["jackson_7_32.wav", "12_jackson_3.wav", "7_jackson.wav",
                                  "7_jackson_3.flac", "7_jack_son_3.wav"])
def test_parse_name_rejects_other_names(name):
    with pytest.raises(DatasetFormatError, match="digit.*speaker.*index"):
        parse_name(name)


def test_fsdd_layout_is_found_from_any_level(fsdd_root: Path, recordings: Path):
    folder = fsdd_root / "fsdd" / "recordings"
    assert find_recordings(fsdd_root) == ("fsdd", folder)  # a data root
    assert find_recordings(fsdd_root / "fsdd") == ("fsdd", folder)  # the dataset folder
    assert find_recordings(folder) == ("fsdd", folder)  # the recordings themselves
    assert find_recordings(recordings.parent) == ("fsdd", recordings)  # an unzipped course zip


def test_fsdd_table(fsdd_root: Path):
    table = audio_table(fsdd_root)
    assert len(table) == N_FIXTURE
    assert list(table.columns) == list(audio.TABLE_COLUMNS)
    assert sorted(table["file"]) == sorted(audio_fixture_names())
    assert table.attrs["layout"] == "fsdd"
    assert set(table["speaker"]) == set(AUDIO_SPEAKERS)
    assert table.groupby(["speaker", "digit"]).size().eq(AUDIO_FIXTURE_INDICES).all()
    assert (table["sample_rate"] == 8000).all()
    np.testing.assert_allclose(table["duration"], table["frames"] / 8000)
    first = table.iloc[0]
    assert (first["speaker"], first["digit"], first["index"]) == ("alba", 0, 0)
    assert table["digit"].dtype.kind == "i" and table["index"].dtype.kind == "i"


def test_audiomnist_layout(tmp_path: Path):
    write_audiomnist(tmp_path)
    assert find_recordings(tmp_path) == ("audiomnist", tmp_path / "data")
    table = audio_table(tmp_path)
    assert table.attrs["layout"] == "audiomnist"
    assert list(table["speaker"].unique()) == ["01", "02"]
    assert sorted(table["digit"].unique()) == [0, 3]
    assert (table["sample_rate"] == 48000).all() and len(table) == 8
    np.testing.assert_allclose(sorted(table["duration"].unique()), [0.3, 0.4])


def test_audiomnist_file_in_the_wrong_speaker_folder(tmp_path: Path):
    write_audiomnist(tmp_path)
    shutil.move(tmp_path / "data" / "01" / "0_01_0.wav", tmp_path / "data" / "02" / "0_01_0.wav")
    with pytest.raises(DatasetFormatError, match="0_01_0.wav.*folder '02'"):
        audio_table(tmp_path)


def test_missing_recordings_say_how_to_get_them(tmp_data: Path):
    with pytest.raises(DatasetMissingError) as info:
        audio_table()
    text = str(info.value)
    assert str(tmp_data / "data") in text and "download_fsdd" in text
    assert "COURSEKIT_SMOKE=1" in text and "AudioMNIST" in text


def test_no_fixture_fallback_outside_smoke_mode(tmp_data: Path):
    ensure_fixtures()  # fixtures exist, yet must not be used outside smoke mode
    with pytest.raises(DatasetMissingError):
        audio_table()


def test_smoke_mode_reads_the_fixture_with_the_real_loader(tmp_data: Path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_SMOKE", "1")
    table = audio_table()
    assert len(table) == N_FIXTURE
    assert Path(table.attrs["folder"]) == tmp_data / "fixtures" / "fsdd" / "recordings"


def test_a_stray_wav_name_is_an_error(recordings: Path):
    (recordings / "notes.wav").write_bytes(wav_bytes(sine(440, 8000, 0.1), 8000))
    with pytest.raises(DatasetFormatError, match="notes.wav"):
        audio_table(recordings)


# --- reading -----------------------------------------------------------------------------


def test_read_wav_returns_mono_float32(tmp_path: Path):
    path = tmp_path / "1_a_0.wav"
    path.write_bytes(wav_bytes(sine(440, 8000, 0.25, channels=2), 8000))
    wave, rate = read_wav(path)
    assert rate == 8000 and wave.dtype == np.float32 and wave.shape == (2000,)
    np.testing.assert_allclose(wave, sine(440, 8000, 0.25), atol=1e-4)  # PCM16 rounding


def test_truncated_wav_is_an_error_naming_the_file(recordings: Path):
    path = recordings / "3_bruno_1.wav"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert sf.info(str(path)).frames > 0  # libsndfile alone would read it silently
    with pytest.raises(DatasetFormatError, match=r"3_bruno_1\.wav is truncated"):
        read_wav(path)
    with pytest.raises(DatasetFormatError, match="3_bruno_1.wav"):
        load_waveforms(audio_table(recordings))


@pytest.mark.parametrize("payload", [b"", b"RIFF\x00\x00", b"not a wav file at all" * 10])
def test_damaged_wav_is_an_error_naming_the_file(tmp_path: Path, payload: bytes):
    path = tmp_path / "5_x_0.wav"
    path.write_bytes(payload)
    with pytest.raises(DatasetFormatError, match="5_x_0.wav"):
        read_wav(path)


def test_header_without_data_chunk(tmp_path: Path):
    path = tmp_path / "5_x_0.wav"
    path.write_bytes(wav_bytes(sine(440, 8000, 0.1), 8000)[:40])  # cut inside the header
    with pytest.raises(DatasetFormatError, match="5_x_0.wav"):
        check_wav_header(path)


def test_every_fixture_file_passes_the_header_check(fsdd_root: Path):
    for path in (fsdd_root / "fsdd" / "recordings").iterdir():
        check_wav_header(path)


def test_fit_length_pads_and_trims():
    wave = torch.arange(1.0, 7.0)  # 6 samples
    assert fit_length(wave, 8).tolist() == [1, 2, 3, 4, 5, 6, 0, 0]
    assert fit_length(wave, 4).tolist() == [1, 2, 3, 4]
    assert fit_length(wave, 8, "center").tolist() == [0, 1, 2, 3, 4, 5, 6, 0]
    assert fit_length(wave, 4, "center").tolist() == [2, 3, 4, 5]
    assert fit_length(torch.zeros(3, 10), 5).shape == (3, 5)
    with pytest.raises(ValueError, match="align"):
        fit_length(wave, 4, "end")


def test_load_waveforms_resamples_and_fixes_the_length(tmp_path: Path):
    write_audiomnist(tmp_path)
    table = audio_table(tmp_path)
    waves = load_waveforms(table, sample_rate=8000, n_samples=4000)
    assert waves.shape == (8, 4000) and waves.dtype == torch.float32
    # 0.3 s at 48 kHz -> 2400 samples at 8 kHz, then silence up to 4000.
    short = int(np.flatnonzero(table["duration"].round(3) == 0.3)[0])
    assert waves[short, 2500:].abs().max() < 1e-3 and waves[short, :2300].abs().max() > 0.3
    # The digit-3 files are 600 Hz sines: the peak stays at 600 Hz after resampling.
    row = int(np.flatnonzero(table["digit"] == 3)[0])
    spectrum = torch.fft.rfft(waves[row, :2400]).abs()
    assert abs(spectrum.argmax().item() * 8000 / 2400 - 600) < 5
    one = load_waveforms(table.iloc[[0]], sample_rate=16000, n_samples=None)
    assert one.shape == (1, round(table["duration"].iloc[0] * 16000))


# --- features ----------------------------------------------------------------------------


def test_mel_config_shapes_and_checks():
    config = MelConfig()
    assert (config.n_samples, config.n_frames) == (8000, 126)
    with pytest.raises(ValueError, match="Nyquist"):
        MelConfig(f_max=5000)
    with pytest.raises(ValueError, match="hop_length"):
        MelConfig(hop_length=0)


def test_power_to_db_floors_each_spectrogram_on_its_own():
    power = torch.tensor([[[1.0, 1e-12]], [[1e-4, 1e-20]]])  # two (1, 2) spectrograms
    db = power_to_db(power, top_db=30)
    assert db[0].tolist() == [[0.0, -30.0]]
    assert torch.allclose(db[1], torch.tensor([[-40.0, -70.0]]))


def test_mel_centres_match_torchaudio_filters():
    config = MelConfig()
    bank = torchaudio.functional.melscale_fbanks(
        config.n_fft // 2 + 1, 0.0, 4000.0, config.n_mels, 8000
    )  # (freqs, n_mels)
    peaks = bank.argmax(0).numpy() * 8000 / config.n_fft
    centres = mel_frequencies(config)
    assert np.all(np.diff(centres) > 0) and 0 < centres[0] and centres[-1] < 4000
    assert np.abs(peaks - centres).max() <= 8000 / config.n_fft  # within one FFT bin


def test_features_are_computed_once_then_read_from_the_cache(recordings: Path, runs: Path,
                                                             monkeypatch):
    table = audio_table(recordings)
    config = MelConfig(n_mels=32, hop_length=80)
    features = logmel_features(table, config)
    assert features.shape == (N_FIXTURE, 32, 101) and features.dtype == torch.float32
    folder = runs / "lab" / "02_audiomnist_melspectrogram" / "cache"
    assert audio.default_cache_dir() == folder
    (cache,) = folder.glob("logmel-*.pt")
    assert sorted(p.suffix for p in recordings.iterdir()) == [".wav"] * N_FIXTURE  # read only

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    with monkeypatch.context() as patch:
        patch.setattr(audio, "load_waveforms", no_reading)
        again = logmel_features(table, config)
    # the very numbers computed (float16 both times): a rerun trains on the same inputs and
    # finds its finished checkpoints (their identity covers the inputs)
    assert torch.equal(again, features)
    assert torch.equal(logmel_features(table, config, use_cache=False), features)
    # Another setting, or a changed file, is computed afresh.
    logmel_features(table, MelConfig(n_mels=24))
    path = recordings / "0_alba_0.wav"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    logmel_features(table, config)
    assert len(list(folder.glob("logmel-*.pt"))) == 3
    assert cache.exists()


def test_damaged_cache_is_recomputed(recordings: Path, tmp_path: Path):
    table = audio_table(recordings).iloc[:20]
    first = logmel_features(table, cache_dir=tmp_path / "c")
    (cache,) = (tmp_path / "c").glob("*.pt")
    cache.write_bytes(b"garbage")
    assert torch.equal(logmel_features(table, cache_dir=tmp_path / "c"), first)
    assert torch.load(cache, weights_only=True)["files"] == list(table["file"])


def test_use_cache_false_writes_nothing(recordings: Path, runs: Path):
    logmel_features(audio_table(recordings).iloc[:5], use_cache=False)
    assert not runs.exists() and len(list(recordings.iterdir())) == N_FIXTURE


def test_features_do_not_depend_on_the_batch(recordings: Path):
    table = audio_table(recordings).iloc[:12]
    config = MelConfig()
    together = logmel(load_waveforms(table), config, batch_size=5)
    alone = logmel(load_waveforms(table.iloc[[7]]), config)
    assert torch.allclose(together[7], alone[0], atol=1e-4)
    assert together.amax(dim=(1, 2)).sub(together.amin(dim=(1, 2))).le(80 + 1e-3).all()


# --- splits ------------------------------------------------------------------------------


def test_random_split_mixes_speakers(fsdd_root: Path):
    table = audio_table(fsdd_root)
    train, test = random_split(table, 0.2, seed=0)
    assert len(test) == round(0.2 * len(table)) and len(train) + len(test) == len(table)
    assert not set(train) & set(test)
    assert shared_speakers(table, train, test) == sorted(AUDIO_SPEAKERS)
    again = random_split(table, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, test), strict=True))
    with pytest.raises(ValueError, match="test_fraction"):
        random_split(table, 1.0)


def test_speaker_splits_share_no_speaker(fsdd_root: Path):
    table = audio_table(fsdd_root)
    train, test = speaker_split(table, ["bruno", "dmitri"])
    assert set(table["speaker"].iloc[test]) == {"bruno", "dmitri"}
    assert shared_speakers(table, train, test) == []
    folds = list(leave_one_speaker_out(table))
    assert [s for s, _, _ in folds] == sorted(AUDIO_SPEAKERS)
    for speaker, train, test in folds:
        assert set(table["speaker"].iloc[test]) == {speaker}
        assert shared_speakers(table, train, test) == []
        assert len(train) + len(test) == len(table)
    with pytest.raises(ValueError, match="unknown speaker"):
        speaker_split(table, ["george"])
    with pytest.raises(ValueError, match="nothing is left"):
        speaker_split(table, list(AUDIO_SPEAKERS))


# --- download: checksum and safe extraction, on archives built here ----------------------


def fsdd_zip(path: Path, recordings: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Write a zip laid out like GitHub's FSDD archive (WAVs + code and docs)."""
    top = "free-spoken-digit-dataset-1.0.10"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/README.md", "FSDD")
        zf.writestr(f"{top}/acquire_data/say_numbers_prompt.py", "print()")
        zf.writestr(f"{top}/recordings/", "")  # a directory entry
        for wav in sorted(recordings.glob("*.wav"))[:30]:
            zf.write(wav, f"{top}/recordings/{wav.name}")
        for name, payload in (extra or {}).items():
            zf.writestr(name, payload)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_verify_archive(tmp_path: Path, recordings: Path):
    archive = fsdd_zip(tmp_path / "a.zip", recordings)
    verify_archive(archive, sha256(archive))
    with pytest.raises(ChecksumError, match="a.zip has SHA-256 .* expected 0+"):
        verify_archive(archive, "0" * 64)


def test_extract_keeps_only_the_recordings(tmp_path: Path, recordings: Path):
    archive = fsdd_zip(tmp_path / "a.zip", recordings)
    target = extract_recordings(archive, tmp_path / "out" / "recordings", expected_files=30)
    names = sorted(p.name for p in target.iterdir())
    assert len(names) == 30 and all(n.endswith(".wav") for n in names)
    assert (target / names[0]).read_bytes() == (recordings / names[0]).read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["recordings"]  # no temp left
    assert len(audio_table(target)) == 30
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask  # not owner-only


@pytest.mark.parametrize("member", [
    "../evil.wav", "free-spoken-digit-dataset-1.0.10/recordings/../../1_x_0.wav",
    "/etc/1_x_0.wav", "C:\\1_x_0.wav",
])  # fmt: skip
def test_extract_refuses_paths_leaving_the_target(tmp_path: Path, recordings: Path, member):
    archive = fsdd_zip(tmp_path / "a.zip", recordings, extra={member: b"x"})
    with pytest.raises(DatasetFormatError, match="outside the target"):
        extract_recordings(archive, tmp_path / "out" / "recordings")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "evil.wav").exists()


def test_extract_refuses_links(tmp_path: Path, recordings: Path):
    archive = fsdd_zip(tmp_path / "a.zip", recordings)
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo("free-spoken-digit-dataset-1.0.10/recordings/1_link_0.wav")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetFormatError, match="link"):
        extract_recordings(archive, tmp_path / "out" / "recordings")


def test_extract_checks_the_count_and_the_target(tmp_path: Path, recordings: Path):
    archive = fsdd_zip(tmp_path / "a.zip", recordings)
    with pytest.raises(DatasetFormatError, match="30 recordings, expected 3000"):
        extract_recordings(archive, tmp_path / "out", expected_files=3000)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        extract_recordings(archive, tmp_path / "full")
    (tmp_path / "bad.zip").write_bytes(b"PK not really")
    with pytest.raises(DatasetFormatError, match="not a valid zip"):
        extract_recordings(tmp_path / "bad.zip", tmp_path / "out2")


def test_download_fsdd_offline_from_a_file_url(tmp_path: Path, recordings: Path):
    archive = fsdd_zip(tmp_path / "src.zip", recordings)
    url = archive.as_uri()  # file:// : the whole download path, without the network
    folder = download_fsdd(tmp_path / "data", url=url, sha256=sha256(archive))
    assert folder == tmp_path / "data" / "fsdd" / "recordings"
    assert (tmp_path / "data" / "fsdd" / FSDD_ARCHIVE).is_file()
    table = audio_table(tmp_path / "data")
    assert len(table) == 30 and table.attrs["layout"] == "fsdd"


def test_download_fsdd_rejects_a_wrong_checksum(tmp_path: Path, recordings: Path):
    archive = fsdd_zip(tmp_path / "src.zip", recordings)
    with pytest.raises(ChecksumError):
        download_fsdd(tmp_path / "data", url=archive.as_uri())  # the real FSDD digest
    assert not (tmp_path / "data" / "fsdd" / "recordings").exists()


def test_download_failure_is_a_missing_data_error(tmp_path: Path):
    with pytest.raises(DatasetMissingError, match="could not download"):
        download_fsdd(tmp_path, url=(tmp_path / "nothing.zip").as_uri())


# --- the fixture -------------------------------------------------------------------------


def test_fixture_is_fsdd_pcm16_mono_8khz(fsdd_root: Path):
    folder = fsdd_root / "fsdd" / "recordings"
    info = sf.info(str(folder / "4_chloe_2.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    table = audio_table(fsdd_root)
    assert table["duration"].between(0.15, 1.0).all()


def test_fixture_is_deterministic_and_rewritten_when_incomplete(tmp_path: Path):
    first = write_fsdd_fixture(tmp_path / "a")
    second = write_fsdd_fixture(tmp_path / "b")
    name = "6_dmitri_3.wav"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    root = ensure_fixtures(tmp_path / "fx")
    (root / "fsdd" / "recordings" / name).unlink()
    ensure_fixtures(root)
    assert (root / "fsdd" / "recordings" / name).is_file()


def test_fixture_digits_differ_more_than_speakers_of_a_digit(fsdd_root: Path):
    """Nearest-centroid on time-averaged log-mels, centroids from 3 speakers, scored on the
    fourth: the digits are learnable across voices (well above the 10 % of chance)."""
    table = audio_table(fsdd_root)
    x = logmel_features(table, use_cache=False).mean(dim=2)  # (N, n_mels)
    x = x - x.mean(dim=1, keepdim=True)
    scores = []
    for _, train, test in leave_one_speaker_out(table):
        y = table["digit"].to_numpy()
        centroids = torch.stack([x[train][y[train] == d].mean(0) for d in range(10)])
        predicted = torch.cdist(x[test], centroids).argmin(1).numpy()
        scores.append((predicted == y[test]).mean())
    assert np.mean(scores) > 0.3, scores
    assert pd.Series(scores).min() > 0.1
