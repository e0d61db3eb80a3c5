"""Awkward frames: grey, 16-bit, CMYK, EXIF-rotated, 8K, tiny and oversized images are handled or refused with
one line, and an EXIF-rotated photo gives an upright face."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from facelab.extract import ExtractConfig, extract_faces
from facelab.workspace.faces import list_faces, read_meta

CFG = ExtractConfig(size=64, workers=1, sequence="photos", second_look=False)


@pytest.fixture(scope="module")
def result(tmp_path_factory, grace_hopper):
    d = tmp_path_factory.mktemp("bad") / "photos"
    d.mkdir()
    face = cv2.resize(grace_hopper, (256, 300), interpolation=cv2.INTER_AREA)
    pil = Image.fromarray(face)
    pil.convert("L").save(d / "grey.jpg", quality=92)
    cv2.imwrite(str(d / "deep16.png"), (cv2.cvtColor(face, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257))
    pil.convert("CMYK").save(d / "cmyk.jpg", quality=92)
    # pixels stored turned a quarter (as a phone held sideways writes them), EXIF orientation 6 turns them back
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(face, 1))).save(d / "exif.jpg", quality=92, exif=exif.tobytes())
    big = np.full((4320, 7680, 3), 100, np.uint8)  # a medium shot: frames over 1280 px are detected downscaled,
    big[1000:1000 + 1500, 3000:3000 + 1280] = cv2.resize(face, (1280, 1500))  # faces from 1/16 of the width
    cv2.imwrite(str(d / "uhd8k.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 80])
    cv2.imwrite(str(d / "tiny.png"), np.full((20, 20, 3), 90, np.uint8))
    buf = io.BytesIO()
    Image.new("L", (9000, 9000), 0).save(buf, "JPEG")  # 81 MP: over the frame limit, refused from its header
    (d / "huge.jpg").write_bytes(buf.getvalue())
    res = extract_faces(d, d / "aligned", CFG)
    return d, res


def test_each_bad_frame_is_handled_or_refused_in_one_line(result):
    d, res = result
    found = {read_meta(p).frame_stem for p in list_faces(d / "aligned")}
    assert found == {"grey", "deep16", "cmyk", "exif", "uhd8k"}
    assert res.errors == 1 and res.no_face == 1  # huge refused, tiny has no room for a face
    (line,) = res.error_files
    assert line.startswith("huge.jpg") and "\n" not in line


def test_exif_rotated_photo_gives_an_upright_face(result):
    d, _ = result
    (path,) = [p for p in list_faces(d / "aligned") if p.stem.startswith("exif")]
    lm = read_meta(path).lm_frame
    eyes_y, mouth_y = lm[36:48, 1].mean(), lm[48:68, 1].mean()
    eyes_dx = lm[42:48, 0].mean() - lm[36:42, 0].mean()
    assert mouth_y > eyes_y and eyes_dx > 2 * abs(lm[42:48, 1].mean() - lm[36:42, 1].mean())
    assert read_meta(path).extra["rotation"] == 0  # upright as decoded: no quarter-turn retry was needed
