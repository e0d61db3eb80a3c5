"""A face file sort cannot use is left in place and named; `sort` exits 1 unless told --keep-going."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_sort_tools import _face, _write  # noqa: E402

from facelab.cli.root import cli  # noqa: E402
from facelab.sort import sort_faces  # noqa: E402
from facelab.workspace.faces import list_faces  # noqa: E402

pytestmark = pytest.mark.fault


def _folder(tmp_path, astronaut) -> Path:
    d = tmp_path / "aligned"
    d.mkdir()
    for i, name in enumerate("abc"):
        _write(d, name, _face(astronaut, blur=i), f"{i + 1:06d}", 0, yaw=0.1 * i)
    bad = _write(d, "z", _face(astronaut), "000009", 0)
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])  # cut off, as by a full disk
    return d


def test_sort_names_the_unusable_file_and_leaves_it_in_place(tmp_path, astronaut):
    d = _folder(tmp_path, astronaut)
    res = sort_faces(d, "blur")
    assert res.kept == 3 and res.skipped == 1
    assert [f.split(":")[0] for f in res.failures] == ["z.jpg"]
    assert (d / "z.jpg").is_file() and len(list_faces(d)) == 4


def test_sort_command_exits_1_with_one_line_and_0_with_keep_going(tmp_path, astronaut):
    d = _folder(tmp_path, astronaut)
    res = CliRunner().invoke(cli, ["sort", str(d), "--by", "face-yaw"], obj={})
    assert res.exit_code == 1, res.output
    last = [ln for ln in res.output.splitlines() if ln.strip()][-1]
    assert "z.jpg" in last and "--keep-going" in last and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["sort", str(d), "--by", "face-yaw", "--keep-going"], obj={})
    assert res.exit_code == 0, res.output
