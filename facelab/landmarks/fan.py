"""FAN (2DFAN-4) landmarks through the optional ``face-alignment`` package, with user-supplied weights."""

from __future__ import annotations

import numpy as np

from facelab.detect.base import check_image, find_weights, import_face_alignment, require_weights, weight_dirs
from facelab.errors import FacelabError
from facelab.landmarks.base import LANDMARKS
from facelab.utils.torch_io import load_tensors

FAN_WEIGHTS = "2DFAN4-11f355bf06.pth.tar"
REFERENCE_SCALE = 195.0  # face-alignment's box size of a "scale 1" face
CENTER_Y_OFFSET = 0.12  # its crop centre sits this fraction of the box height above the box centre


@LANDMARKS.register("fan", help="2DFAN-4 (face-alignment, DeepFaceLab's landmarks); needs 2DFAN4-11f355bf06.pth.tar")
class FanLandmarks:
    name = "fan"

    def __init__(self, device: str = "cpu", flip: bool = True) -> None:
        ok, why = import_face_alignment()
        if not ok:
            raise FacelabError(f"landmarks fan: face-alignment {why}")
        from face_alignment.models import FAN

        (path,) = require_weights(FAN_WEIGHTS)
        net = FAN(4)
        state = load_tensors(path, "2DFAN-4 state dict", "replace the file")
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise FacelabError(f"{path} is not a 2DFAN-4 state dict ({exc}); replace the file") from exc
        self._net = net.to(device).eval()
        self.device = device
        self.flip = flip

    @staticmethod
    def available() -> tuple[bool, str]:
        ok, why = import_face_alignment()
        if not ok:
            return False, why
        if find_weights(FAN_WEIGHTS) is None:
            return False, f"weights {FAN_WEIGHTS} not in " + " or ".join(str(d) for d in weight_dirs())
        return True, "ok"

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        import torch
        from face_alignment.utils import crop, flip

        x0, y0, x1, y1 = box
        centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 - (y1 - y0) * CENTER_Y_OFFSET])
        scale = ((x1 - x0) + (y1 - y0)) / REFERENCE_SCALE
        patch = crop(check_image(image), centre, scale).transpose(2, 0, 1).astype(np.float32) / 255.0
        inp = torch.from_numpy(patch)[None].to(self.device)
        with torch.no_grad():
            out = self._net(inp)
            out = out[-1] if isinstance(out, (list, tuple)) else out
            if self.flip:
                back = self._net(flip(inp))
                back = back[-1] if isinstance(back, (list, tuple)) else back
                out = out + flip(back, is_label=True)
        return decode_heatmaps(out[0].cpu().numpy(), centre, scale)


def decode_heatmaps(heatmaps: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    """(68, H, W) FAN heat-maps -> (68, 2) float64 frame pixels.

    Arg-max per map, a quarter-pixel step toward the larger neighbour, then the crop transform inverted
    (the crop spans ``200 * scale`` frame pixels around ``centre``), as face-alignment does, without rounding.
    """
    n, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, h * w).argmax(1)
    px, py = flat % w, flat // w
    pts = np.stack([px, py], 1).astype(np.float64) + 1.0  # face-alignment counts heat-map pixels from 1
    inner = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
    i = np.nonzero(inner)[0]
    dx = heatmaps[i, py[i], px[i] + 1] - heatmaps[i, py[i], px[i] - 1]
    dy = heatmaps[i, py[i] + 1, px[i]] - heatmaps[i, py[i] - 1, px[i]]
    pts[i] += 0.25 * np.stack([np.sign(dx), np.sign(dy)], 1)
    pts -= 0.5
    span = 200.0 * scale
    return pts * (span / w) + np.asarray(centre, np.float64) - span / 2.0
