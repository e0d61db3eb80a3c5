"""``python main.py models list|fetch|verify`` against a local HTTP server standing in for the upstream hosts."""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from http_testkit import LocalServer  # noqa: E402

from facelab.cli.root import cli  # noqa: E402
from facelab.weights.catalog import CATALOG, get_weight, search_dirs  # noqa: E402

ONNX_BYTES = b"\x08\x08" + bytes(range(200)) * 300  # stands in for an .onnx file; only the bytes matter here


def _run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with LocalServer() as srv:
        srv.state.files["/gfpgan_1.4.onnx"] = ONNX_BYTES
        srv.state.files["/gfpgan_1.4.hash"] = f"{zlib.crc32(ONNX_BYTES):08x}".encode()
        srv.state.files["/s3fd-619a316812.pth"] = b"not the real s3fd weights"
        yield srv, tmp_path / "models"


def test_catalogue_is_honest():
    names = {w.name for w in CATALOG}
    assert {"s3fd", "fan", "gfpgan_1.4", "codeformer", "gpen_bfr_512", "xseg_1", "xseg_2",
            "bisenet_resnet_34"} <= names
    for w in CATALOG:
        assert w.url.startswith("https://") and w.url.endswith(w.file) and w.licence
        assert w.sha256 or w.sha256_prefix or w.hash_url  # every file can be checked somehow
        if w.sha256_prefix:  # torch hub's convention: the name carries the digest's first digits
            assert w.sha256_prefix in w.file
    assert get_weight("s3fd").url == "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth"


def test_list_shows_everything(env):
    _, folder = env
    res = _run("models", "list", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(rows) == {w.name for w in CATALOG}
    s3fd = rows["s3fd"]
    assert s3fd["present"] is False and s3fd["looked_for_in"][0] == str(folder)
    assert "full digest not published" in s3fd["hash"] and s3fd["licence"].startswith("BSD-3-Clause")
    assert "crc32" in rows["codeformer"]["hash"] and "sha256 not published" in rows["codeformer"]["hash"]
    text = _run("models", "list").output
    assert "s3fd" in text and "https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/" \
        "gfpgan_1.4.onnx" in text and str(folder) in text


def test_fetch_verify_and_corruption(env):
    srv, folder = env
    res = _run("models", "fetch", "gfpgan_1.4", "--mirror", srv.url)
    assert res.exit_code == 0, res.output
    assert "gfpgan_1.4: fetched" in res.output and "crc32 matches" in res.output
    assert (folder / "gfpgan_1.4.onnx").read_bytes() == ONNX_BYTES and (folder / "gfpgan_1.4.hash").is_file()
    rows = {r["name"]: r for r in json.loads(_run("models", "list", "--json").output)}
    assert rows["gfpgan_1.4"]["present"] and rows["gfpgan_1.4"]["size"] == len(ONNX_BYTES)
    res = _run("models", "verify")
    assert res.exit_code == 0 and "gfpgan_1.4: ok" in res.output
    again = _run("models", "fetch", "gfpgan_1.4", "--mirror", srv.url)
    assert "gfpgan_1.4: present" in again.output
    (folder / "gfpgan_1.4.onnx").write_bytes(ONNX_BYTES[:-3])
    res = _run("models", "verify")
    assert res.exit_code == 1 and "gfpgan_1.4: MISMATCH" in res.output and "models fetch --force gfpgan_1.4" in \
        res.output
    res = _run("models", "fetch", "gfpgan_1.4", "--mirror", srv.url)  # a bad file in place is fetched again
    assert res.exit_code == 0 and (folder / "gfpgan_1.4.onnx").read_bytes() == ONNX_BYTES


def test_fetch_wrong_hash_and_server_gone(env):
    srv, folder = env
    res = _run("models", "fetch", "s3fd", "--mirror", srv.url)
    assert res.exit_code == 1
    assert "sha256 prefix is" in res.output and "expected 619a316812..." in res.output
    assert not folder.exists() or not any(folder.iterdir())
    srv.stop()
    res = _run("models", "fetch", "gfpgan_1.4", "--mirror", srv.url, "--timeout", "5")
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("Error: cannot fetch " + srv.url + "gfpgan_1.4.hash") and str(folder) in line


def test_verify_a_named_file_and_unknown_names(env, tmp_path):
    res = _run("models", "verify")
    assert res.exit_code == 0 and "no weight files present" in res.output
    res = _run("models", "verify", "s3fd")
    assert res.exit_code == 0 and "s3fd: missing" in res.output
    fake = tmp_path / "s3fd.pth"
    fake.write_bytes(b"x")
    res = _run("models", "verify", "s3fd", "--file", str(fake))
    assert res.exit_code == 1 and "MISMATCH" in res.output
    res = _run("models", "fetch", "gfpgan_9")
    assert res.exit_code == 1 and "unknown weight file 'gfpgan_9'" in res.output


def test_torch_hub_cache_counts_for_face_alignment_files(env, tmp_path):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    assert hub in search_dirs(get_weight("fan")) and hub not in search_dirs(get_weight("xseg_1"))
    hub.mkdir(parents=True)
    (hub / "2DFAN4-11f355bf06.pth.tar").write_bytes(b"x")
    rows = {r["name"]: r for r in json.loads(_run("models", "list", "--json").output)}
    assert rows["fan"]["present"] and rows["fan"]["path"].startswith(str(hub))
