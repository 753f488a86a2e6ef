"""Folder layouts, rates and the checked archive of the spoken-digit datasets (notebook 02)."""

NOTEBOOK = "02_audiomnist_melspectrogram"  # its artifacts (feature cache) are filed under it

# Free Spoken Digit Dataset (the course's "AudioMNIST.zip"):
# recordings/{digit}_{speaker}_{index}.wav, mono PCM16 at 8 kHz. The 60-speaker AudioMNIST of
# Becker et al.: data/{NN}/{digit}_{NN}_{rep}.wav at 48 kHz. Both name files the same way;
# the folder structure tells them apart.
FSDD_FOLDER = "fsdd"  # <data root>/fsdd/recordings/*.wav
FSDD_RECORDINGS = "recordings"
AUDIOMNIST_FOLDER = "AudioMNIST"  # <data root>/AudioMNIST/data/NN/*.wav
AUDIOMNIST_DATA = "data"
AUDIO_LAYOUTS = ("fsdd", "audiomnist")
AUDIO_NAME_PATTERN = r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9-]+)_(?P<index>\d+)\.wav$"
FSDD_RATE = 8000
AUDIOMNIST_RATE = 48000
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
# Release v1.0.10 (6 speakers, 3,000 files) as GitHub's zip of the tag (commit d6938f9b).
# Size and SHA-256 as published by an independent audit of that archive; GitHub does not
# promise byte-stable archives, so a mismatch names both digests and how to proceed.
FSDD_VERSION = "1.0.10"
FSDD_URL = (
    "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
)
FSDD_ARCHIVE = "free-spoken-digit-dataset-1.0.10.zip"
FSDD_ARCHIVE_SIZE = 16_419_872
FSDD_ARCHIVE_SHA256 = "c680098f5d2355ba7cc4bd8b0ca9e0a24c00ebe3b4c552208889a4d28d4fbc2b"
FSDD_ARCHIVE_FILES = 3000
