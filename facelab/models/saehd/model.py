"""SAEHD: DeepFaceLab's main swap model (df / liae with -u -d -t): its modules, training forward and losses.

The U-Net patch GAN (``D_gan``) and the df-only true-face code discriminator (``D_code``) are critics: built here
by :meth:`SAEHD.make_critics`, held and stepped by the trainer.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from facelab.models.base import Critic, Losses, TrainableModel, TrainKnobs
from facelab.models.batch import Batch
from facelab.models.common import coerce_arch, critic_pair, module_device, no_param_grads, preview_outputs
from facelab.models.saehd import losses as L
from facelab.models.saehd.archi import Decoder, Encoder, Inter, init_weights
from facelab.models.saehd.config import SAEHDArch
from facelab.models.saehd.gan import CodeDiscriminator, UNetPatchDiscriminator


def gan_patch_size(knobs: TrainKnobs, resolution: int) -> int:
    return knobs.gan_patch_size if knobs.gan_patch_size > 0 else max(3, resolution // 8)


def build_patch_critic(patch: int, dims: int, device: torch.device) -> UNetPatchDiscriminator:
    """A fresh U-Net patch discriminator; its (patch size, dims) live in a ``config`` buffer so a saved state
    rebuilds it."""
    d = UNetPatchDiscriminator(patch, dims)
    init_weights(d)
    d.register_buffer("config", torch.tensor([patch, dims], dtype=torch.int64))
    return d.to(device)


def with_patch_critic(model: TrainableModel, knobs: TrainKnobs,
                      critics: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """``critics`` with ``D_gan`` added (or rebuilt, when patch size or dims changed) if ``gan_power`` > 0."""
    if knobs.gan_power <= 0:
        return critics
    want = [gan_patch_size(knobs, model.resolution), knobs.gan_dims]
    current = critics.get("D_gan")
    if current is None or current.config.tolist() != want:
        critics["D_gan"] = build_patch_critic(*want, module_device(model))
    return critics


def patch_critic_from_state(state: Mapping[str, torch.Tensor], device: torch.device) -> UNetPatchDiscriminator:
    patch, dims = (int(v) for v in state["config"].tolist())
    d = build_patch_critic(patch, dims, device)
    d.load_state_dict(state)
    return d


def gan_terms(critic: Critic, pred: torch.Tensor, target: torch.Tensor,
              power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator term (B,), critic loss (B,)) of the patch GAN on ``pred`` against ``target``."""
    with no_param_grads(critic.module):
        fake_c, fake_f = critic.module(pred)
    g = power * (L.bce_logits(fake_c, 1.0) + L.bce_logits(fake_f, 1.0))
    (real_c, real_f), (fake_c, fake_f) = critic_pair(critic, target, pred)
    d_loss = 0.5 * (L.bce_logits(real_c, 1.0) + L.bce_logits(fake_c, 0.0)) \
        + 0.5 * (L.bce_logits(real_f, 1.0) + L.bce_logits(fake_f, 0.0))
    return g, d_loss


class SAEHD(TrainableModel):
    """SAEHD swap model. ``arch``: :class:`SAEHDArch`, a partial dict of it, or None for the defaults."""

    name = "saehd"
    arch_cls = SAEHDArch

    def __init__(self, arch: SAEHDArch | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.arch = a = coerce_arch(self.arch_cls, arch, self.name)
        opts, res = a.opts, a.resolution
        lowest = res // (32 if "d" in opts else 16)
        self.encoder = Encoder(res, a.e_dims, opts)
        feats = self.encoder.out_features
        if a.kind == "df":
            self.inter = Inter(feats, a.ae_dims, a.ae_dims, lowest, opts)
            self.decoder_src = Decoder(a.ae_dims, a.d_dims, a.d_mask_dims, opts)
            self.decoder_dst = Decoder(a.ae_dims, a.d_dims, a.d_mask_dims, opts)
            self.code_res = self.inter.out_res
        else:
            self.inter_AB = Inter(feats, a.ae_dims, a.ae_dims * 2, lowest, opts)
            self.inter_B = Inter(feats, a.ae_dims, a.ae_dims * 2, lowest, opts)
            self.decoder = Decoder(a.ae_dims * 4, a.d_dims, a.d_mask_dims, opts)
            self.code_res = self.inter_AB.out_res
        init_weights(self)

    # -- critics and frozen parts ------------------------------------------------------------------------------
    def make_critics(self, knobs: TrainKnobs, existing: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        """``D_gan`` when ``gan_power`` > 0; ``D_code`` (df only) when ``true_face_power`` > 0."""
        critics = with_patch_critic(self, knobs, dict(existing))
        if knobs.true_face_power > 0 and self.arch.kind == "df" and "D_code" not in critics:
            critics["D_code"] = self._build_code_critic()
        return critics

    def critic_from_state(self, name: str, state: Mapping[str, torch.Tensor]) -> nn.Module:
        if name == "D_gan":
            return patch_critic_from_state(state, module_device(self))
        if name == "D_code" and self.arch.kind == "df":
            d = self._build_code_critic()
            d.load_state_dict(state)
            return d
        return super().critic_from_state(name, state)

    def _build_code_critic(self) -> CodeDiscriminator:
        d = CodeDiscriminator(self.arch.ae_dims, self.code_res)
        init_weights(d)
        return d.to(module_device(self))

    def frozen_parameters(self, knobs: TrainKnobs) -> list[nn.Parameter]:
        """LIAE keeps inter_AB fixed while random warp is off (DeepFaceLab trains it only with warp on)."""
        if self.arch.kind == "liae" and not knobs.random_warp:
            return list(self.inter_AB.parameters())
        return []

    def reinit_inters(self) -> None:
        for part in (self.inter,) if self.arch.kind == "df" else (self.inter_AB, self.inter_B):
            init_weights(part)

    # -- forward ----------------------------------------------------------------------------------------------
    def codes(self, src: torch.Tensor | None, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latent codes: ``dst`` and ``src_dst`` (swap) always, ``src`` when ``src`` is given (one encoder pass)."""
        x = dst if src is None else torch.cat([src, dst])
        enc = self.encoder(x)
        n = 0 if src is None else src.shape[0]
        if self.arch.kind == "df":
            code = self.inter(enc)
            out = {"dst": code[n:], "src_dst": code[n:]}
            if src is not None:
                out["src"] = code[:n]
            return out
        ab = self.inter_AB(enc)
        b = self.inter_B(enc[n:])
        out = {"dst": torch.cat([b, ab[n:]], 1), "src_dst": torch.cat([ab[n:], ab[n:]], 1)}
        if src is not None:
            out["src"] = torch.cat([ab[:n], ab[:n]], 1)
        return out

    def forward(self, warped_src: torch.Tensor, warped_dst: torch.Tensor,
                knobs: TrainKnobs) -> dict[str, torch.Tensor]:
        """The training forward; the swap is decoded too when a style power needs it."""
        style = knobs.face_style_power > 0 or knobs.bg_style_power > 0
        return self.reconstruct(warped_src, warped_dst, swap=style, swap_detached=knobs.face_style_power > 0)

    def reconstruct(self, warped_src: torch.Tensor, warped_dst: torch.Tensor, swap: bool = False,
                    swap_detached: bool = False) -> dict[str, torch.Tensor]:
        """Reconstructions ``src_src``, ``dst_dst`` (+ masks), codes ``src_code``, ``dst_code``; with ``swap``
        also ``src_dst`` (+ mask); with ``swap_detached`` ``src_dst_nograd``."""
        c = self.codes(warped_src, warped_dst)
        n = warped_src.shape[0]
        out = {"src_code": c["src"], "dst_code": c["dst"]}
        if self.arch.kind == "df":
            src_codes = torch.cat([c["src"], c["src_dst"]]) if swap else c["src"]
            faces, masks = self.decoder_src(src_codes)
            out["dst_dst"], out["dst_dst_mask"] = self.decoder_dst(c["dst"])
        else:
            parts = [c["src"], c["dst"]] + ([c["src_dst"]] if swap else [])
            faces, masks = self.decoder(torch.cat(parts))
            out["dst_dst"], out["dst_dst_mask"] = faces[n:2 * n], masks[n:2 * n]
        out["src_src"], out["src_src_mask"] = faces[:n], masks[:n]
        if swap:
            out["src_dst"], out["src_dst_mask"] = faces[-n:], masks[-n:]
        if swap_detached:
            out["src_dst_nograd"] = self._decode_swap(c["src_dst"].detach())[0]
        return out

    def _decode_swap(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.decoder_src if self.arch.kind == "df" else self.decoder)(code)

    def swap_faces(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(swapped face (B,3,R,R), its mask (B,1,R,R), the dst face's learned mask (B,1,R,R)); differentiable."""
        c = self.codes(None, dst)
        if self.arch.kind == "liae":  # one decoder: decode swap and dst codes in one pass
            faces, masks = self.decoder(torch.cat([c["src_dst"], c["dst"]]))
            n = dst.shape[0]
            return faces[:n], masks[:n], masks[n:]
        face, mask = self.decoder_src(c["src_dst"])
        return face, mask, self.decoder_dst(c["dst"])[1]

    @torch.no_grad()
    def preview(self, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        return preview_outputs(self.reconstruct(src, dst, swap=True))

    # -- losses -----------------------------------------------------------------------------------------------
    def losses(self, p: dict[str, torch.Tensor], b: Batch, knobs: TrainKnobs,
               critics: Mapping[str, Critic]) -> Losses:
        """Scalar losses: ``src_loss``, ``dst_loss``, ``G_loss`` and the critic losses that are on."""
        res = self.resolution
        t_src, t_dst = L.targets(b.target_src, b.target_src_mask, b.target_dst, b.target_dst_mask, res,
                                 knobs.blur_out_mask)
        em = knobs.eyes_mouth_prio
        src = L.reconstruction_loss(t_src, p["src_src"], b.target_src_mask, p["src_src_mask"],
                                    b.target_src_em if em else None, res, knobs.masked_training,
                                    knobs.hf_power)
        dst = L.reconstruction_loss(t_dst, p["dst_dst"], b.target_dst_mask, p["dst_dst_mask"],
                                    b.target_dst_em if em else None, res, knobs.masked_training,
                                    knobs.hf_power)
        src = src + self._style_terms(p, b, t_dst, knobs)
        g = src.mean() + dst.mean()
        d_losses: dict[str, torch.Tensor] = {}
        if knobs.true_face_power > 0 and "D_code" in critics:
            tf_g, d_losses["D_code"] = self._true_face(critics["D_code"], p["src_code"], p["dst_code"],
                                                       knobs.true_face_power)
            g = g + tf_g
        if knobs.gan_power > 0 and "D_gan" in critics:
            g = g + self._gan_terms(critics["D_gan"], p, b, t_src, knobs, d_losses)
        return Losses({"src_loss": src.mean(), "dst_loss": dst.mean(), "G_loss": g}, d_losses)

    def _style_terms(self, p: dict[str, torch.Tensor], b: Batch, t_dst: torch.Tensor,
                     knobs: TrainKnobs) -> torch.Tensor:
        res = self.resolution
        out = torch.zeros((), device=t_dst.device)
        if knobs.face_style_power > 0:
            content = p["src_dst_nograd"] * p["src_dst_mask"].detach()
            style = (p["dst_dst"] * p["dst_dst_mask"]).detach()
            out = out + L.style_loss(content, style, res // 8, 10000.0 * knobs.face_style_power / 100.0)
        if knobs.bg_style_power > 0:
            anti = 1.0 - L.blurred_mask(b.target_src_mask, res)  # DeepFaceLab's quirk: the src-target mask
            a, t = p["src_dst"] * anti, t_dst * anti
            w = 10.0 * knobs.bg_style_power / 100.0
            out = out + w * (L.dssim(a, t, int(res / 11.6)) + L.mse(a, t))
        return out

    @staticmethod
    def _true_face(critic: Critic, src_code: torch.Tensor, dst_code: torch.Tensor,
                   power: float) -> tuple[torch.Tensor, torch.Tensor]:
        with no_param_grads(critic.module):
            g = power * L.bce_logits(critic.module(src_code), 1.0).mean()
        real, fake = critic_pair(critic, dst_code, src_code)
        d_loss = 0.5 * (L.bce_logits(real, 1.0) + L.bce_logits(fake, 0.0))
        return g, d_loss.mean()

    def _gan_terms(self, critic: Critic, p: dict[str, torch.Tensor], b: Batch, t_src: torch.Tensor,
                   knobs: TrainKnobs, d_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        pred, target = p["src_src"], t_src
        if knobs.masked_training:
            m_b = L.blurred_mask(b.target_src_mask, self.resolution)
            pred, target = pred * m_b, target * m_b
        g, d_loss = gan_terms(critic, pred, target, knobs.gan_power)
        d_losses["D_gan"] = d_loss.mean()
        g = g.mean()
        if knobs.masked_training:
            anti = 1.0 - L.blurred_mask(b.target_src_mask, self.resolution)
            g = g + 1e-6 * L.total_variation_mse(p["src_src"]).mean() \
                + 0.02 * L.mse(p["src_src"] * anti, t_src * anti).mean()
        return g
