"""AMP ("amplifier"): one encoder with a dense code, two inters (src, dst) and one decoder; the src code mixes
channels of both inters (morph factor), and the swap takes the first ``morph_value`` share of channels from
``inter_src`` and the rest from ``inter_dst``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from facelab.align.geometry import FACE_TYPE_NAMES, canonical_face_type
from facelab.models.base import Critic, Losses, TrainableModel, TrainKnobs
from facelab.models.batch import Batch
from facelab.models.common import coerce_arch, preview_outputs
from facelab.models.saehd import losses as L
from facelab.models.saehd.archi import Decoder, Encoder, init_weights
from facelab.models.saehd.model import gan_terms, patch_critic_from_state, with_patch_critic

AMP_FACE_TYPES = ("full", "whole_face", "head")


@dataclass(frozen=True)
class AMPArch:
    """AMP architecture; ``resolution`` a multiple of 32."""

    resolution: int = field(default=224, metadata={
        "help": "Face resolution in pixels. Fixed at creation.", "range": (16, 1024)})
    face_type: str = field(default="whole_face", metadata={
        "help": "Face type: h, mf, f, wf, head or a DeepFaceLab spelling. Fixed at creation.",
        "choices": FACE_TYPE_NAMES})
    ae_dims: int = field(default=256, metadata={"help": "Autoencoder dims. Fixed at creation.", "range": (1, 4096)})
    inter_dims: int = field(default=1024, metadata={"help": "AMP inter dims. Fixed at creation.", "range": (1, 16384)})
    e_dims: int = field(default=64, metadata={"help": "Encoder dims. Fixed at creation.", "range": (1, 1024)})
    d_dims: int = field(default=64, metadata={"help": "Decoder dims. Fixed at creation.", "range": (1, 1024)})
    d_mask_dims: int = field(default=22, metadata={"help": "Mask decoder dims. Fixed at creation.", "range": (1, 1024)})

    def __post_init__(self) -> None:
        if self.resolution < 32 or self.resolution % 32:
            raise ValueError(f"resolution {self.resolution} must be a positive multiple of 32")
        ft = canonical_face_type(self.face_type)
        if ft not in AMP_FACE_TYPES:
            raise ValueError(f"AMP face_type must be one of {', '.join(AMP_FACE_TYPES)}, not {self.face_type!r}")
        object.__setattr__(self, "face_type", ft)
        for name in ("ae_dims", "inter_dims", "e_dims", "d_dims", "d_mask_dims"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")


class AMPEncoder(nn.Module):
    """(B, 3, R, R) -> (B, ae_dims): 5 downscales with residual blocks after the 1st and 5th, pixel norm, Dense."""

    def __init__(self, resolution: int, e_ch: int, ae_dims: int) -> None:
        super().__init__()
        self.convs = Encoder(resolution, e_ch, frozenset("tu"))
        self.dense = nn.Linear(self.convs.out_features, ae_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(x))


class AMPInter(nn.Module):
    """(B, ae_dims) -> Dense -> (B, inter_dims, R/32, R/32)."""

    def __init__(self, ae_dims: int, inter_dims: int, res: int) -> None:
        super().__init__()
        self.shape = (inter_dims, res, res)
        self.dense = nn.Linear(ae_dims, inter_dims * res * res)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x).view(-1, *self.shape)


def morph_masks(batch: int, channels: int, factor: float, device: torch.device,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, 1, 1) binary masks, each with exactly int(C * factor) ones at random channels."""
    ranks = torch.rand(batch, channels, device=device, generator=generator).argsort(dim=1).argsort(dim=1)
    return (ranks < int(channels * factor)).float()[..., None, None]


def swap_channel_mask(channels: int, morph_value: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    """(1, C, 1, 1): 1 for the first floor(C * morph_value) channels (export-friendly form of a slice)."""
    if isinstance(morph_value, torch.Tensor):
        value = morph_value.reshape(()).float()
    else:
        value = torch.tensor(float(morph_value), device=device)
    k = torch.floor(value * channels)
    return (torch.arange(channels, device=device, dtype=torch.float32) < k).float().view(1, -1, 1, 1)


class AMP(TrainableModel):
    """AMP swap model. ``arch``: :class:`AMPArch`, a partial dict of it, or None. Critic: ``D_gan`` (patch GAN)."""

    name = "amp"
    arch_cls = AMPArch

    def __init__(self, arch: AMPArch | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.arch = a = coerce_arch(AMPArch, arch, "amp")
        low = a.resolution // 32
        self.encoder = AMPEncoder(a.resolution, a.e_dims, a.ae_dims)
        self.inter_src = AMPInter(a.ae_dims, a.inter_dims, low)
        self.inter_dst = AMPInter(a.ae_dims, a.inter_dims, low)
        self.decoder = Decoder(a.inter_dims, a.d_dims, a.d_mask_dims, frozenset("td"))
        init_weights(self)

    def make_critics(self, knobs: TrainKnobs, existing: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        return with_patch_critic(self, knobs, dict(existing))

    def critic_from_state(self, name: str, state: Mapping[str, torch.Tensor]) -> nn.Module:
        if name == "D_gan":
            return patch_critic_from_state(state, next(self.parameters()).device)
        return super().critic_from_state(name, state)

    def frozen_parameters(self, knobs: TrainKnobs) -> list[nn.Parameter]:
        """inter_src and inter_dst: DeepFaceLab's AMP optimises only the encoder and the decoder, so both inters
        keep their initial weights (random projections of the dense code)."""
        return list(self.inter_src.parameters()) + list(self.inter_dst.parameters())

    def reinit_inters(self) -> None:
        """Fresh weights for inter_src and inter_dst (when pretraining is turned off)."""
        init_weights(self.inter_src)
        init_weights(self.inter_dst)

    def forward(self, warped_src: torch.Tensor, warped_dst: torch.Tensor,
                knobs: TrainKnobs) -> dict[str, torch.Tensor]:
        return self.reconstruct(warped_src, warped_dst, morph_factor=knobs.morph_factor)

    def reconstruct(self, warped_src: torch.Tensor, warped_dst: torch.Tensor, morph_factor: float = 0.5,
                    swap: bool = False) -> dict[str, torch.Tensor]:
        """``src_src``, ``dst_dst`` (+ masks); the src code mixes inter_src and inter_dst channels at random
        (``morph_factor`` share from inter_src); ``swap`` adds ``src_dst`` at morph 1."""
        n = warped_src.shape[0]
        code = self.encoder(torch.cat([warped_src, warped_dst]))
        s_of_src, d_all = self.inter_src(code[:n]), self.inter_dst(code)
        mix = morph_masks(n, self.arch.inter_dims, morph_factor, code.device)
        src_code = s_of_src * mix + d_all[:n] * (1 - mix)
        codes = [src_code, d_all[n:]] + ([self.inter_src(code[n:])] if swap else [])
        faces, masks = self.decoder(torch.cat(codes))
        out = {"src_src": faces[:n], "src_src_mask": masks[:n], "dst_dst": faces[n:2 * n],
               "dst_dst_mask": masks[n:2 * n]}
        if swap:
            out["src_dst"], out["src_dst_mask"] = faces[2 * n:], masks[2 * n:]
        return out

    def swap_faces(self, dst: torch.Tensor, morph_value: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, ...]:
        """(face, mask, dst_mask) for ``dst``: the first floor(C * morph_value) code channels from inter_src."""
        code = self.encoder(dst)
        s, d = self.inter_src(code), self.inter_dst(code)
        keep = swap_channel_mask(self.arch.inter_dims, morph_value, dst.device)
        faces, masks = self.decoder(torch.cat([s * keep + d * (1 - keep), d]))
        n = dst.shape[0]
        return faces[:n], masks[:n], masks[n:]

    @torch.no_grad()
    def predict(self, dst: torch.Tensor, morph_value: float = 1.0) -> dict[str, torch.Tensor]:
        """The swap at ``morph_value`` (1 = the source's code only); see :meth:`TrainableModel.predict`."""
        face, mask, dst_mask = self.swap_faces(dst, morph_value)
        return {"face": face.float(), "mask": mask.float(), "dst_mask": dst_mask.float()}

    @torch.no_grad()
    def preview(self, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        return preview_outputs(self.reconstruct(src, dst, morph_factor=1.0, swap=True))

    def _side_loss(self, target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, pred_mask: torch.Tensor,
                   em: torch.Tensor) -> torch.Tensor:
        """5 DSSIM(res/11.6) + 5 DSSIM(res/23.2) + 10 MSE on masked faces, 300 L1 eyes+mouth, 10 mask MSE."""
        res = self.resolution
        m_b = L.blurred_mask(mask, res)
        t, pr = target * m_b, pred * m_b
        loss = 5.0 * L.dssim(t, pr, int(res / 11.6)) + 5.0 * L.dssim(t, pr, int(res / 23.2)) + 10.0 * L.mse(t, pr)
        return loss + 300.0 * L.l1(target * em, pred * em) + 10.0 * L.mse(mask, pred_mask)

    def losses(self, p: dict[str, torch.Tensor], b: Batch, knobs: TrainKnobs,
               critics: Mapping[str, Critic]) -> Losses:
        res = self.resolution
        t_src, t_dst = L.targets(b.target_src, b.target_src_mask, b.target_dst, b.target_dst_mask, res,
                                 knobs.blur_out_mask)
        src = self._side_loss(t_src, p["src_src"], b.target_src_mask, p["src_src_mask"], b.target_src_em)
        dst = self._side_loss(t_dst, p["dst_dst"], b.target_dst_mask, p["dst_dst_mask"], b.target_dst_em)
        anti = 1.0 - L.blurred_mask(b.target_dst_mask, res)
        g = src.mean() + dst.mean() + 0.1 * L.mse(p["dst_dst"] * anti, t_dst * anti).mean() \
            + 1e-6 * L.total_variation_mse(p["dst_dst"] * anti).mean()
        d_losses: dict[str, torch.Tensor] = {}
        if knobs.gan_power > 0 and "D_gan" in critics:
            g_gan, d_losses["D_gan"] = self._gan_terms(critics["D_gan"], p, b, t_src, t_dst, knobs.gan_power)
            s_anti = 1.0 - L.blurred_mask(b.target_src_mask, res)
            g = g + g_gan + 1e-6 * L.total_variation_mse(p["src_src"]).mean() \
                + 0.02 * L.mse(p["src_src"] * s_anti, t_src * s_anti).mean()
        return Losses({"src_loss": src.mean(), "dst_loss": dst.mean(), "G_loss": g}, d_losses)

    def _gan_terms(self, critic: Critic, p: dict[str, torch.Tensor], b: Batch, t_src: torch.Tensor,
                   t_dst: torch.Tensor, power: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator term, critic loss), batch means, of the patch GAN on both sides' masked reconstructions:
        the generator pays ``power`` times the four "real" cross-entropies (centre and per-pixel logits of src and
        dst); the critic's loss is its eight cross-entropies (real targets, fake reconstructions) times 1/8."""
        res, n = self.resolution, t_src.shape[0]
        m_src, m_dst = L.blurred_mask(b.target_src_mask, res), L.blurred_mask(b.target_dst_mask, res)
        pred = torch.cat([p["src_src"] * m_src, p["dst_dst"] * m_dst])
        target = torch.cat([t_src * m_src, t_dst * m_dst])
        g, d = gan_terms(critic, pred, target, power)  # per image: power (c + f), 0.5 (two pairs of terms)
        return (g[:n] + g[n:]).mean(), (0.25 * (d[:n] + d[n:])).mean()
