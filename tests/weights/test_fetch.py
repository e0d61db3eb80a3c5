"""Fetching weight files from a local HTTP server: good file, wrong hash, truncated transfer and resume, a server
that ignores Range, a server gone, and a fetch killed mid-transfer. Nothing reaches the internet."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from http_testkit import LocalServer  # noqa: E402

from facelab.errors import FacelabError  # noqa: E402
from facelab.weights.catalog import WeightFile  # noqa: E402
from facelab.weights.fetch import check_file, fetch_weight  # noqa: E402

PAYLOAD = bytes(range(256)) * 600  # 153,600 bytes, several chunks


def _sha_entry(url: str, data: bytes = PAYLOAD) -> WeightFile:
    return WeightFile("toy", "toy.bin", "enhancer", "test file", url + "toy.bin", "test",
                      sha256=hashlib.sha256(data).hexdigest())


def _crc_entry(url: str) -> WeightFile:
    return WeightFile("toy", "toy.onnx", "enhancer", "test file", url + "toy.onnx", "test",
                      hash_url=url + "toy.hash")


@pytest.fixture
def server():
    with LocalServer() as srv:
        srv.state.files["/toy.bin"] = PAYLOAD
        srv.state.files["/toy.onnx"] = PAYLOAD
        srv.state.files["/toy.hash"] = f"{zlib.crc32(PAYLOAD):08x}\n".encode()
        yield srv


def test_good_file_sha256(server, tmp_path):
    calls = []
    res = fetch_weight(_sha_entry(server.url), tmp_path, progress=lambda n=1, **kw: calls.append((n, kw)))
    assert res.status == "fetched" and res.check.ok is True
    assert (tmp_path / "toy.bin").read_bytes() == PAYLOAD
    assert not (tmp_path / "toy.bin.part").exists()
    assert calls[0] == (0, {"total": len(PAYLOAD)}) and sum(n for n, _ in calls) == len(PAYLOAD)
    again = fetch_weight(_sha_entry(server.url), tmp_path)  # checked and present: no second download
    assert again.status == "present" and len(server.state.requests) == 1


def test_good_file_crc_hash_kept_beside(server, tmp_path):
    entry = _crc_entry(server.url)
    res = fetch_weight(entry, tmp_path)
    assert res.check.ok is True and "crc32" in res.check.detail
    assert (tmp_path / "toy.hash").read_text().strip() == f"{zlib.crc32(PAYLOAD):08x}"
    assert check_file(entry, tmp_path / "toy.onnx").ok is True  # offline, from the kept .hash
    (tmp_path / "toy.onnx").write_bytes(PAYLOAD[:-1] + b"\x00")
    assert check_file(entry, tmp_path / "toy.onnx").ok is False


def test_wrong_hash_keeps_old_file_and_drops_partial(server, tmp_path):
    old = b"the old file the user had"
    (tmp_path / "toy.bin").write_bytes(old)
    entry = _sha_entry(server.url, data=b"something else entirely")
    with pytest.raises(FacelabError, match=r"sha256 is [0-9a-f]{64}, expected .*deleted.*toy.bin already there"):
        fetch_weight(entry, tmp_path, force=True)
    assert (tmp_path / "toy.bin").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.bin"]


def test_bad_hash_file_is_refused(server, tmp_path):
    server.state.files["/toy.hash"] = b"<html>not a hash</html>"
    with pytest.raises(FacelabError, match="does not hold a CRC32"):
        fetch_weight(_crc_entry(server.url), tmp_path)
    assert not list(tmp_path.iterdir())


def test_truncated_transfer_then_resume_with_range(server, tmp_path):
    entry = _sha_entry(server.url)
    server.state.cut_at = 50_000
    with pytest.raises(FacelabError, match=r"stopped at 50,000 of 153,600 bytes.*again to resume"):
        fetch_weight(entry, tmp_path)
    part = tmp_path / "toy.bin.part"
    assert part.stat().st_size == 50_000 and not (tmp_path / "toy.bin").exists()
    server.state.cut_at = None
    res = fetch_weight(entry, tmp_path)
    assert res.status == "resumed" and res.check.ok is True
    assert server.state.requests[-1] == ("/toy.bin", "bytes=50000-")
    assert (tmp_path / "toy.bin").read_bytes() == PAYLOAD and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    (tmp_path / "toy.bin.part").write_bytes(PAYLOAD[:7000])
    server.state.ignore_range = True
    res = fetch_weight(_sha_entry(server.url), tmp_path)
    assert res.status == "fetched" and (tmp_path / "toy.bin").read_bytes() == PAYLOAD


def test_stale_partial_of_another_file_is_dropped(server, tmp_path):
    (tmp_path / "toy.bin.part").write_bytes(b"\xff" * 1000)  # not a prefix of the file
    with pytest.raises(FacelabError, match="deleted"):
        fetch_weight(_sha_entry(server.url), tmp_path)
    assert not (tmp_path / "toy.bin.part").exists()
    assert fetch_weight(_sha_entry(server.url), tmp_path).check.ok is True  # the next try starts afresh


def test_server_gone_names_url_and_folder(server, tmp_path):
    entry = _sha_entry(server.url)
    server.stop()
    with pytest.raises(FacelabError) as err:
        fetch_weight(entry, tmp_path / "models", timeout=5)
    msg = str(err.value)
    assert entry.url in msg and str(tmp_path / "models") in msg and "copy it into" in msg
    assert "\n" not in msg


def test_missing_on_server(server, tmp_path):
    entry = WeightFile("nope", "nope.bin", "enhancer", "t", server.url + "nope.bin", "t", sha256="0" * 64)
    with pytest.raises(FacelabError, match="HTTP 404"):
        fetch_weight(entry, tmp_path)


KILL_SCRIPT = """
import sys
from facelab.weights.catalog import WeightFile
from facelab.weights.fetch import fetch_weight
url, folder, sha = sys.argv[1:4]
fetch_weight(WeightFile("toy", "toy.bin", "enhancer", "t", url + "toy.bin", "t", sha256=sha), folder)
"""


def test_fetch_killed_mid_transfer_resumes(server, tmp_path):
    server.state.trickle = 0.05  # about 80 KiB/s: the kill lands mid-transfer
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, server.url, str(tmp_path),
                             hashlib.sha256(PAYLOAD).hexdigest()], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    part = tmp_path / "toy.bin.part"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 8192):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    have = part.stat().st_size
    assert 0 < have < len(PAYLOAD) and not (tmp_path / "toy.bin").exists()
    server.state.trickle = 0.0
    res = fetch_weight(_sha_entry(server.url), tmp_path)
    assert res.status == "resumed" and (tmp_path / "toy.bin").read_bytes() == PAYLOAD


def test_a_second_fetch_into_a_busy_folder_is_refused(server, tmp_path):
    from facelab.utils.lock import folder_lock

    with folder_lock(tmp_path, "models fetch"):
        with pytest.raises(FacelabError, match=str(tmp_path)):
            fetch_weight(_sha_entry(server.url), tmp_path)
    assert fetch_weight(_sha_entry(server.url), tmp_path).check.ok is True
