"""Atomic writes and tensor files that cannot run code (distill.files)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from distill.errors import UserError
from distill.files import TEMPORARY, atomic_write, load_tensors, save_tensors, write_text
from distill.rundir import RunDir
from distill.synthetic import DistilledData


class RunsCode:
    """A pickled object whose loading would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_file_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"x": torch.zeros(2), "evil": RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UserError) as caught:
        load_tensors(tmp_path / "evil.pt", "the checkpoint")
    message = str(caught.value)
    assert not marker.exists()
    assert "evil.pt" in message and "\n" not in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04truncated zip"])
def test_garbage_and_truncated_files_are_one_line_user_errors(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(UserError, match="bad.pt is corrupt or not a distill file") as caught:
        load_tensors(tmp_path / "bad.pt", "the checkpoint", advice="; do this")
    assert "\n" not in str(caught.value) and str(caught.value).endswith("; do this")


def test_a_missing_file_and_a_folder_are_named(tmp_path):
    with pytest.raises(UserError, match="missing"):
        load_tensors(tmp_path / "none.pt", "the pool")
    with pytest.raises(UserError, match="it is a directory"):
        load_tensors(tmp_path, "the pool")


def test_atomic_files_get_the_users_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "hi")
        save_tensors(tmp_path / "b.pt", {"x": torch.ones(1)})
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.pt").stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def fail(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


WRITER = textwrap.dedent("""
    import sys, torch
    from distill.synthetic import DistilledData
    data = DistilledData(torch.randn(4, 250_000, 1, 4, 4), torch.zeros(4, 250_000, dtype=torch.long), torch.zeros(4), 10)
    data.save(sys.argv[1])
    print("saved", flush=True)
    while True:
        data.save(sys.argv[1])
""")


@pytest.mark.slow
def test_distilled_data_killed_while_it_is_written_is_never_half_a_file(tmp_path):
    """SIGKILL a process that rewrites a 64 MB distilled.pt in a loop: the file under its real
    name always loads whole, and the next run in the directory removes the leftover temporary."""
    path = tmp_path / "distilled.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for delay in (0.05, 0.2, 0.45):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env)
        try:
            assert writer.stdout.readline().strip() == b"saved"
            time.sleep(delay)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
        data = DistilledData.load(path)
        assert data.x.shape == (4, 250_000, 1, 4, 4)
    RunDir(tmp_path).create()
    assert not [p for p in tmp_path.iterdir() if TEMPORARY in p.name]
    assert path.exists()
