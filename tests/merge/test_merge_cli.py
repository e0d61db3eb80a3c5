"""``python main.py merge`` and ``merge preview`` on a real tiny model saved as a checkpoint."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from merge_testkit import detect_landmarks, make_clip  # noqa: E402

from facelab.cli.root import cli  # noqa: E402
from facelab.merge.preview import LABEL_H, combos, parse_vary  # noqa: E402
from facelab.workspace import read_image  # noqa: E402

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 8, "archi": "df"}


@pytest.fixture
def merge_ws(ws, astronaut):
    from facelab.models import create_model
    from facelab.train.checkpoint import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = create_model("saehd", TINY)
    save_checkpoint(ws.model("tiny"), make_checkpoint(model, {}, 0, {}), backups=0)
    make_clip(ws, astronaut, 3, detect_landmarks(astronaut), faces_at={0, 2})
    return ws


def _run(args):
    result = CliRunner().invoke(cli, args, obj={}, catch_exceptions=False)
    return result


def test_merge_command_writes_every_frame_and_a_summary(merge_ws, tmp_path):
    ws = merge_ws
    cfg = tmp_path / "merge.json"
    cfg.write_text(json.dumps({"defaults": {"color": "none"}, "ranges": [{"frames": "3", "mode": "original"}]}))
    res = _run(["merge", "-w", str(ws.root), "--device", "cpu", "--workers", "0", "--config", str(cfg),
                "--erode", "4", "--no-smooth"])
    assert res.exit_code == 0, res.output
    assert "copied (no face)" in res.output and "merged frames/s" in res.output
    assert sorted(p.name for p in ws.merged.glob("*.png")) == ["000001.png", "000002.png", "000003.png"]
    assert (ws.merged / "merge.json").is_file()  # the record of which model made them
    assert np.array_equal(read_image(ws.merged / "000003.png"), read_image(ws.frames("dst") / "000003.png"))
    assert not np.array_equal(read_image(ws.merged / "000001.png"), read_image(ws.frames("dst") / "000001.png"))
    again = _run(["merge", "-w", str(ws.root), "--device", "cpu", "--workers", "0"])
    assert re.search(r"skipped \(already merged\)\s+3\n", again.output)


def test_merge_bad_option_is_a_one_line_error(merge_ws):
    res = CliRunner().invoke(cli, ["merge", "-w", str(merge_ws.root), "--mask-mode", "stored:sat", "--workers", "0"],
                             obj={})
    assert res.exit_code != 0
    assert "no stored mask 'sat'" in res.output and "Traceback" not in res.output


def test_merge_preview_writes_a_labelled_grid_of_the_right_size(merge_ws, tmp_path):
    out = tmp_path / "grid.png"
    res = _run(["merge", "preview", "-w", str(merge_ws.root), "--device", "cpu", "--frames", "1,3",
                "--vary", "mode=overlay,seamless", "--vary", "erode=0,20", "--out", str(out), "--cell-width", "100"])
    assert res.exit_code == 0, res.output
    grid = read_image(out)
    assert grid.shape == (2 * (100 + LABEL_H), 4 * 100, 3)  # 512x512 frames -> 100x100 cells
    assert grid[:LABEL_H].max() == 255 and grid[LABEL_H + 10:LABEL_H + 90, 10:90].std() > 10  # label, then image
    assert not np.array_equal(grid[LABEL_H:122, :100], grid[LABEL_H:122, 100:200])  # erode changed the cell


def test_vary_parsing_types_values_and_rejects_unknown_settings():
    assert parse_vary("erode=0,20") == ("erode", [0, 20])
    assert parse_vary("masked-hist-match=true,no") == ("masked_hist_match", [True, False])
    assert combos([("mode", ["a", "b"]), ("erode", [1, 2, 3])])[1] == {"mode": "a", "erode": 2}
    assert combos([]) == [{}]
    from facelab.errors import FacelabError

    for bad in ("erode", "batch=1,2", "nope=1", "erode=x"):
        with pytest.raises(FacelabError):
            parse_vary(bad)
