"""TensorBoard logs of training: the event file read back carries the losses, iteration times and previews."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from facelab.cli.root import cli  # noqa: E402
from facelab.train.tensorboard import TB_DIR, TensorBoardLog, open_tensorboard, tee  # noqa: E402
from facelab.workspace import write_image  # noqa: E402

ARCH = ["--resolution", "32", "--archi", "df-ud", "--e-dims", "8", "--ae-dims", "16", "--d-dims", "8",
        "--d-mask-dims", "4"]


def _events(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_log_writes_scalars_and_new_previews_only(tmp_path):
    model_dir = tmp_path / "model" / "m"
    model_dir.mkdir(parents=True)
    write_image(model_dir / "preview.png", np.zeros((8, 8, 3), np.uint8))  # an earlier run's preview
    tb = TensorBoardLog(model_dir)
    seen = []
    cb = tee(lambda n=1, **kw: seen.append(kw), tb)
    cb(0, total=5)  # a total, no iteration: no scalar
    cb(1, iter=1, ms="12", src="0.5000", dst="0.7000")
    cb(1, iter=2, ms="11", src="0.2500", dst="nan")
    img = np.zeros((16, 24, 3), np.uint8)
    img[:, :12] = (255, 0, 0)
    write_image(model_dir / "preview.png", img)
    cb(1, iter=3, ms="10", src="0.1250", dst="0.3000")
    tb.close()
    assert seen[0] == {"total": 5} and len(seen) == 4
    acc = _events(model_dir / TB_DIR)
    assert [(e.step, e.value) for e in acc.Scalars("loss/src")] == [(1, 0.5), (2, 0.25), (3, 0.125)]
    assert [e.step for e in acc.Scalars("loss/dst")] == [1, 3]  # a non-finite loss is left out
    assert [e.value for e in acc.Scalars("time/ms_per_iter")] == [12.0, 11.0, 10.0]
    images = acc.Images("preview")
    assert [(i.step, i.width, i.height) for i in images] == [(3, 24, 16)]


def test_open_tensorboard_choices(tmp_path):
    assert open_tensorboard(tmp_path, False) == (None, None)
    tb, hint = open_tensorboard(tmp_path, None)
    assert isinstance(tb, TensorBoardLog) and hint is None
    tb.close()


def test_train_cli_writes_event_files(tmp_path, aligned_faceset):
    src, dst = aligned_faceset
    ws = tmp_path / "ws"
    common = ["train", "--model", "saehd", "--name", "tiny", "--workspace", str(ws), "--device", "cpu", *ARCH,
              "--workers", "0", "--batch-size", "2", "--no-random-warp", "--src-dir", str(src), "--dst-dir", str(dst)]
    res = CliRunner().invoke(cli, [*common, "--target-iter", "3", "--tensorboard"], obj={}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    model_dir = ws / "model" / "tiny"
    assert (model_dir / "preview.png").is_file() and (model_dir / "loss.png").is_file()  # both stay
    acc = _events(model_dir / TB_DIR)
    assert [e.step for e in acc.Scalars("loss/src")] == [1, 2, 3]
    assert all(np.isfinite(e.value) and e.value > 0 for e in acc.Scalars("loss/dst"))
    assert len(acc.Scalars("time/ms_per_iter")) == 3
    previews = acc.Images("preview")
    assert [p.step for p in previews] == [1, 3] and previews[-1].width > 32  # the first save, then the last
    res = CliRunner().invoke(cli, [*common, "--target-iter", "4", "--no-tensorboard"], obj={},
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert [e.step for e in _events(model_dir / TB_DIR).Scalars("loss/src")] == [1, 2, 3]  # nothing more written
