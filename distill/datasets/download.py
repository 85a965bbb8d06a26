"""Downloading dataset files through pooch, verified against pinned hashes, and unpacking them.

:func:`fetch` is the one code path every dataset that can download goes through: a
:class:`Remote` names a file's mirrors, tried in order, and its pinned hash in pooch's
``"sha256:..."`` / ``"md5:..."`` form. pooch streams each attempt to a temporary file in the
destination folder and moves it to its final name only once its hash matches, so a failed,
corrupt or interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import logging
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pooch

from distill.errors import UserError

UNVERIFIED_ENV = "DISTILL_UNVERIFIED_DOWNLOADS"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Remote:
    """A downloadable file: its mirrors (tried in order) and its pinned hash, or None where none is known."""

    urls: tuple[str, ...]
    known_hash: str | None


def fetch(remote: Remote, dest: Path) -> Path:
    """Download ``remote`` to ``dest`` (a file path), verified against its pinned hash; returns ``dest``.

    The mirrors are tried in order until one yields a file whose hash matches. When all fail
    (no network, an HTTP error, a hash mismatch) a one-line UserError names every URL tried,
    why it failed, and the folder; nothing is left under ``dest``'s name.

    A file without a pinned hash is not downloaded unless the user opts in by setting the
    environment variable ``DISTILL_UNVERIFIED_DOWNLOADS=1``; it is then fetched unverified
    (a warning says so) and its sha256 is logged.
    """
    verified = remote.known_hash is not None
    if not verified and os.environ.get(UNVERIFIED_ENV) != "1":
        raise UserError(
            f"no checksum is pinned for {' or '.join(remote.urls)}, so it is not downloaded unverified; "
            f"place {dest.name} in {dest.parent} by hand, or set {UNVERIFIED_ENV}=1 to download it without verification"
        )
    if not verified:
        log.warning("no checksum is pinned for %s: the download is not verified", dest.name)
    failures = []
    quiet = pooch.get_logger()
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # our own message says what failed, on one line
    try:
        for url in remote.urls:
            try:
                pooch.retrieve(url, known_hash=remote.known_hash, fname=dest.name, path=dest.parent,
                               progressbar=sys.stderr.isatty())
                return dest
            except (OSError, ValueError) as err:  # requests' errors are OSErrors; a hash mismatch is a ValueError
                failures.append(f"{url}: {' '.join(str(err).split())}")
    finally:
        quiet.setLevel(level)
    raise UserError(
        f"could not download {dest.name} to {dest.parent} ({'; '.join(failures)}); "
        f"try again later or place the file there by hand"
    )


def extract_tar(archive: Path, dest: Path) -> None:
    """Unpack a (compressed) tar ``archive`` into ``dest``, refusing members that escape it."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (OSError, EOFError, tarfile.TarError) as err:
        raise UserError(f"cannot extract {archive}: {err}; delete it and download again") from err
