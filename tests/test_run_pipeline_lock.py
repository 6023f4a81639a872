"""The shell driver's lock (scripts/run_pipeline.sh): one lock per output root whatever its
spelling, beside the root, never opened through a planted symbolic link (issue 15).

The driver runs for real; ``CRM_MR`` points at a small stand-in script that records its
arguments, so these tests check the lock, not the pipeline (tests/test_pipeline.py runs it).
"""

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_pipeline.sh"


@pytest.fixture
def driver(tmp_path):
    """Run the driver with a stand-in crm-mr; returns ``run(*args) -> CompletedProcess``."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake-crm-mr"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = dict(os.environ, CRM_MR=str(fake), CRM_LOCK_DIR=str(tmp_path / "locks"))

    def run(*args):
        return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env)

    run.calls = calls
    return run


def _hold(path):
    """Open and lock `path` as another run would; returns the open file (close to release)."""
    held = open(path, "a")  # noqa: SIM115 (kept open by the caller)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return held


def test_lock_lives_beside_the_output_root_and_the_run_goes_ahead(driver, tmp_path):
    (tmp_path / "x").mkdir()
    done = driver("-o", str(tmp_path / "x" / "out"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x" / ".out.crm-lock").is_file()
    assert "--output-root" in driver.calls.read_text()
    assert not (tmp_path / "locks").exists()  # local roots never use the shared directory


@pytest.mark.parametrize("spelling", ["x/out", "x/./out", "x//out", "x/sub/../out", "x/out/"])
def test_every_spelling_of_a_root_meets_the_same_lock(driver, tmp_path, spelling):
    (tmp_path / "x" / "sub").mkdir(parents=True)
    held = _hold(tmp_path / "x" / ".out.crm-lock")
    try:
        done = driver("-o", f"{tmp_path}/{spelling}")
    finally:
        held.close()
    assert done.returncode == 3, done.stderr
    assert f"lock {tmp_path}/x/.out.crm-lock" in done.stderr
    assert not driver.calls.exists()


def test_a_symlink_to_the_root_meets_the_root_s_lock(driver, tmp_path):
    (tmp_path / "x" / "out").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "x" / "out")
    held = _hold(tmp_path / "x" / ".out.crm-lock")
    try:
        assert driver("-o", str(tmp_path / "alias")).returncode == 3
    finally:
        held.close()


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_symlink_planted_at_the_lock_is_refused_and_its_target_untouched(
    driver, tmp_path, target_exists
):
    victim = tmp_path / "victim.txt"
    if target_exists:
        victim.write_text("precious\n")
    (tmp_path / ".out.crm-lock").symlink_to(victim)
    done = driver("-o", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "refusing lock file" in done.stderr and "symbolic link" in done.stderr
    if target_exists:
        assert victim.read_text() == "precious\n"
    else:
        assert not victim.exists()
    assert not driver.calls.exists()


def test_an_existing_lock_file_is_reused_never_truncated(driver, tmp_path):
    lock = tmp_path / ".out.crm-lock"
    lock.write_text("left by an earlier run\n")
    assert driver("-o", str(tmp_path / "out")).returncode == 0
    assert lock.read_text() == "left by an earlier run\n"


def test_hdfs_roots_lock_in_the_private_directory_by_normalised_uri(driver, tmp_path):
    done = driver("-o", "hdfs://ann:pw@NN:8020/crm//latest/")
    assert done.returncode == 0, done.stderr
    locks = tmp_path / "locks"
    (lock,) = locks.iterdir()
    assert "pw" not in lock.name and oct(locks.stat().st_mode)[-3:] == "700"
    held = _hold(lock)
    try:
        for spelling in ("hdfs://nn:8020/crm/latest", "hdfs://nn:8020/crm/./latest"):
            assert driver("-o", spelling).returncode == 3
        assert driver("-o", "hdfs://nn:8020/crm/other").returncode == 0
    finally:
        held.close()


def test_an_output_root_under_a_file_is_refused_as_a_bad_argument(driver, tmp_path):
    (tmp_path / "afile").write_text("x")
    done = driver("-o", str(tmp_path / "afile" / "out"))
    assert done.returncode == 2 and "cannot create" in done.stderr
    assert not driver.calls.exists()
