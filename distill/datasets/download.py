"""Fetching dataset files (http(s) or file:// URLs) with md5 verification, and unpacking them."""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from distill.errors import UserError

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60

log = logging.getLogger(__name__)


def fetch(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` to ``dest``, keeping it only if its md5 is ``md5``.

    The bytes go to a temporary file beside ``dest`` that replaces ``dest`` atomically once
    verified, so an interrupted or corrupt download never leaves a file that looks complete.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = Path(temp_name)
    log.info("downloading %s -> %s", url, dest)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            digest = hashlib.md5()
            while chunk := response.read(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise UserError(
                f"checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}; "
                f"the download was discarded, try again later or place {dest.name} in {dest.parent} by hand"
            )
        os.replace(temp, dest)
    except OSError as err:
        raise UserError(f"could not download {url} to {dest}: {err}") from err
    finally:
        temp.unlink(missing_ok=True)


def fetch_first(urls: Sequence[str], dest: Path, md5: str) -> None:
    """``fetch`` from the first of several mirrors that works; a UserError listing every failure otherwise."""
    failures = []
    for url in urls:
        try:
            fetch(url, dest, md5)
            return
        except UserError as err:
            failures.append(str(err))
    raise UserError("; ".join(failures))


def extract_tar(archive: Path, dest: Path) -> None:
    """Unpack a (compressed) tar ``archive`` into ``dest``, refusing members that escape it."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (OSError, EOFError, tarfile.TarError) as err:
        raise UserError(f"cannot extract {archive}: {err}; delete it and download again") from err
