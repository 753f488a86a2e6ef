"""Download of the Free Spoken Digit Dataset (the course's "AudioMNIST.zip").

`download_fsdd` fetches the FSDD release archive, checks its SHA-256 (`verify_archive`) and
extracts only its WAV recordings (`extract_recordings`), refusing any member that would land
outside the target folder (absolute path, '..', link).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from coursekit import settings
from coursekit.audio.data import NAME, missing_message
from coursekit.audio.formats import (
    FSDD_ARCHIVE,
    FSDD_ARCHIVE_FILES,
    FSDD_ARCHIVE_SHA256,
    FSDD_ARCHIVE_SIZE,
    FSDD_FOLDER,
    FSDD_RECORDINGS,
    FSDD_URL,
)
from coursekit.checkpoint import atomic_dir, atomic_write
from coursekit.data.errors import ChecksumError, DatasetFormatError, DatasetMissingError


def sha256sum(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_archive(path: str | os.PathLike, sha256: str = FSDD_ARCHIVE_SHA256) -> None:
    """Raise ChecksumError unless the file at `path` has SHA-256 `sha256`."""
    actual = sha256sum(path)
    if actual != sha256:
        raise ChecksumError(
            f"{path} has SHA-256 {actual}, expected {sha256} (FSDD release archive "
            f"{FSDD_ARCHIVE}, {FSDD_ARCHIVE_SIZE} bytes). It is corrupted, truncated or not "
            "that archive. Delete it and download again; if GitHub rebuilt the archive, get "
            "the recordings another way (see the message of audio_table) and pass root=."
        )


def _safe_member(name: str) -> PurePosixPath | None:
    """Return the member's path inside its recordings/ folder if it is a WAV recording to
    extract, None to skip it; raise DatasetFormatError for a path escaping the target."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or ":" in name:
        raise DatasetFormatError(f"archive member {name!r} would be written outside the "
                                 "target folder; refusing to extract this archive.")
    if len(path.parts) < 2 or path.parts[-2] != FSDD_RECORDINGS or path.suffix != ".wav":
        return None
    if NAME.match(path.name) is None:
        return None
    return PurePosixPath(path.name)


def extract_recordings(
    archive: str | os.PathLike, target: str | os.PathLike, expected_files: int | None = None
) -> Path:
    """Extract the `*/recordings/*.wav` members of a zip archive into `target`; return it.

    Every member name is checked before anything is written (no absolute path, no '..',
    no link: `DatasetFormatError`); only regular WAV files named like recordings are kept.
    Files land in a temporary folder renamed to `target` at the end, so a failure leaves
    no half-extracted folder. expected_files: raise if the archive holds another count.
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} already holds files; remove it or extract elsewhere")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise DatasetFormatError(f"{archive} is not a valid zip archive ({err})") from err
    with zf:
        members = []
        for info in zf.infolist():
            inner = _safe_member(info.filename)
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            if inner is not None and not info.is_dir():
                if is_link:
                    raise DatasetFormatError(f"archive member {info.filename!r} is a link")
                members.append((info, inner))
        if expected_files is not None and len(members) != expected_files:
            raise DatasetFormatError(
                f"{archive} holds {len(members)} recordings, expected {expected_files}"
            )
        with atomic_dir(target) as tmp:  # target is absent or empty (checked above)
            for info, inner in members:
                with zf.open(info) as src, open(tmp / inner.name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return target


def download_fsdd(
    root: str | os.PathLike | None = None, url: str = FSDD_URL, sha256: str = FSDD_ARCHIVE_SHA256
) -> Path:
    """Download the FSDD release, check its SHA-256, extract its WAVs into
    `<root>/fsdd/recordings/` (root: default data root); return that folder.

    The archive is kept as `<root>/fsdd/<archive name>` and reused if already there.
    """
    root = Path(root).expanduser() if root is not None else settings.data_root()
    folder = root / FSDD_FOLDER
    archive = folder / FSDD_ARCHIVE
    if not archive.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                atomic_write(archive, lambda f: shutil.copyfileobj(response, f))
        except OSError as err:
            raise DatasetMissingError(
                f"could not download {url} ({err}).\n{missing_message(root)}"
            ) from err
    verify_archive(archive, sha256)
    expected = FSDD_ARCHIVE_FILES if sha256 == FSDD_ARCHIVE_SHA256 else None
    return extract_recordings(archive, folder / FSDD_RECORDINGS, expected)
