"""SAEHD: DeepFaceLab's main swap model (df / liae with -u -d -t), its losses and its training step."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from facelab.models.base import StepResult, SwapModel
from facelab.models.common import (
    autocast,
    coerce_arch,
    finish_step,
    preview_outputs,
)
from facelab.models.optim import make_optimizer
from facelab.models.saehd import losses as L
from facelab.models.saehd.archi import Decoder, Encoder, Inter, init_weights
from facelab.models.saehd.config import SAEHDArch
from facelab.models.saehd.gan import CodeDiscriminator, UNetPatchDiscriminator
from facelab.train.batch import Batch
from facelab.train.options import TrainOptions


def gan_patch_size(opts: TrainOptions, resolution: int) -> int:
    return opts.gan_patch_size if opts.gan_patch_size > 0 else max(3, resolution // 8)


class GANMixin:
    """The optional U-Net patch discriminator ``D_gan`` (SAEHD and AMP), built when ``gan_power`` > 0.

    Its (patch size, dims) live in a buffer so a checkpoint that holds one rebuilds it on load.
    """

    D_gan: UNetPatchDiscriminator | None

    def _build_gan(self, patch: int, dims: int) -> UNetPatchDiscriminator:
        d = UNetPatchDiscriminator(patch, dims)
        init_weights(d)
        d.register_buffer("config", torch.tensor([patch, dims], dtype=torch.int64))
        return d.to(self._device())

    def ensure_gan(self, opts: TrainOptions) -> None:
        """Create (or rebuild, when patch size or dims changed) ``D_gan`` if ``opts.gan_power`` > 0."""
        if opts.gan_power <= 0:
            return
        want = [gan_patch_size(opts, self.resolution), opts.gan_dims]
        if self.D_gan is None or self.D_gan.config.tolist() != want:
            self.D_gan = self._build_gan(*want)

    def _restore_optional(self, state: Mapping[str, Any]) -> None:
        cfg = state.get("D_gan.config")
        if cfg is not None and (self.D_gan is None or self.D_gan.config.tolist() != cfg.tolist()):
            self.D_gan = self._build_gan(*[int(v) for v in cfg.tolist()])

    def _device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def gan_losses(self, pred: torch.Tensor, target: torch.Tensor, power: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator term (B,), discriminator loss (B,)) on masked src predictions vs masked targets."""
        d = self.D_gan
        d.requires_grad_(False)
        fake_c, fake_f = d(pred)
        d.requires_grad_(True)
        g = power * (L.bce_logits(fake_c, 1.0) + L.bce_logits(fake_f, 1.0))
        real_c, real_f = d(target.detach())
        fake_c, fake_f = d(pred.detach())
        d_loss = 0.5 * (L.bce_logits(real_c, 1.0) + L.bce_logits(fake_c, 0.0)) \
            + 0.5 * (L.bce_logits(real_f, 1.0) + L.bce_logits(fake_f, 0.0))
        return g, d_loss


class SAEHD(GANMixin, SwapModel):
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
        self.D_gan = None
        self.D_code: CodeDiscriminator | None = None
        self.forward_fn = None  # set to a DDP wrapper of this model by a distributed loop

    # -- optional parts ---------------------------------------------------------------------------------------
    def generator_parameters(self) -> list[nn.Parameter]:
        skip = {id(p) for m in (self.D_gan, self.D_code) if m is not None for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def ddp_ignored_names(self) -> list[str]:
        """Names of discriminator parameters and buffers (DDP must not manage them)."""
        return [n for n, _ in list(self.named_parameters()) + list(self.named_buffers())
                if n.startswith(("D_gan.", "D_code."))]

    def ensure_parts(self, opts: TrainOptions) -> None:
        """Add the discriminators that ``opts`` turns on (GAN; true face for df)."""
        opts = opts.effective()
        self.ensure_gan(opts)
        if opts.true_face_power > 0 and self.arch.kind == "df" and self.D_code is None:
            self.D_code = self._build_code_d()

    def _build_code_d(self) -> CodeDiscriminator:
        d = CodeDiscriminator(self.arch.ae_dims, self.code_res)
        init_weights(d)
        return d.to(self._device())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Like nn.Module's, but first builds the discriminators that ``state_dict`` holds weights of."""
        self._restore_optional(state_dict)
        if self.D_code is None and any(k.startswith("D_code.") for k in state_dict):
            self.D_code = self._build_code_d()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def make_optimizers(self, opts: TrainOptions) -> dict[str, torch.optim.Optimizer]:
        """``G`` over every generator weight (inter_AB included, so its state survives warp on/off runs);
        ``D_gan`` / ``D_code`` when GAN / true face are on."""
        self.ensure_parts(opts)
        opts = opts.effective()
        optims = {"G": make_optimizer(self.generator_parameters(), opts)}
        if opts.gan_power > 0:
            optims["D_gan"] = make_optimizer(self.D_gan.parameters(), opts)
        if self.D_code is not None and opts.true_face_power > 0:
            optims["D_code"] = make_optimizer(self.D_code.parameters(), opts)
        return optims

    def reinit_inters(self) -> None:
        """Fresh weights for the inter block(s): DeepFaceLab does this when pretraining is turned off."""
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

    def forward(self, warped_src: torch.Tensor, warped_dst: torch.Tensor, swap: bool = False,
                swap_detached: bool = False) -> dict[str, torch.Tensor]:
        """The training forward: reconstructions ``src_src``, ``dst_dst`` (+ masks), codes ``src_code``,
        ``dst_code``; with ``swap`` also ``src_dst`` (+ mask); with ``swap_detached`` ``src_dst_nograd``."""
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

    def _decode_dst(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.decoder_dst if self.arch.kind == "df" else self.decoder)(code)

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
    def predict(self, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        face, mask, dst_mask = self.swap_faces(dst)
        return {"face": face.float(), "mask": mask.float(), "dst_mask": dst_mask.float()}

    @torch.no_grad()
    def preview(self, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.forward(src, dst, swap=True)
        return preview_outputs(p)

    # -- training ---------------------------------------------------------------------------------------------
    def train_step(self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], opts: TrainOptions,
                   iteration: int, scaler: torch.amp.GradScaler | None = None) -> StepResult:
        opts = opts.effective()
        fwd = self.forward_fn if self.forward_fn is not None else self
        style = opts.face_style_power > 0 or opts.bg_style_power > 0
        with autocast(batch.warped_src.device, opts):
            p = fwd(batch.warped_src, batch.warped_dst, swap=style, swap_detached=opts.face_style_power > 0)
        p = {k: v.float() for k, v in p.items()}
        terms, d_losses = self._losses(p, batch, opts)
        freeze_ab = self.arch.kind == "liae" and not opts.random_warp
        return finish_step(self, terms, d_losses, optimizers, opts, scaler,
                           before_g_step=self._drop_inter_ab_grads if freeze_ab else None)

    def _drop_inter_ab_grads(self) -> None:
        for prm in self.inter_AB.parameters():
            prm.grad = None

    def _losses(self, p: dict[str, torch.Tensor], b: Batch,
                opts: TrainOptions) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Scalar losses: ``src_loss``, ``dst_loss``, ``G_loss`` and the discriminator losses that are on."""
        res = self.resolution
        t_src, t_dst = L.targets(b.target_src, b.target_src_mask, b.target_dst, b.target_dst_mask, res,
                                 opts.blur_out_mask)
        em = opts.eyes_mouth_prio
        src = L.reconstruction_loss(t_src, p["src_src"], b.target_src_mask, p["src_src_mask"],
                                    b.target_src_em * b.target_src_mask if em else None, res, opts.masked_training)
        dst = L.reconstruction_loss(t_dst, p["dst_dst"], b.target_dst_mask, p["dst_dst_mask"],
                                    b.target_dst_em * b.target_dst_mask if em else None, res, opts.masked_training)
        src = src + self._style_terms(p, b, t_dst, opts)
        g = src.mean() + dst.mean()
        d_losses: dict[str, torch.Tensor] = {}
        if opts.true_face_power > 0 and self.D_code is not None:
            tf_g, d_losses["D_code_loss"] = self._true_face(p["src_code"], p["dst_code"], opts.true_face_power)
            g = g + tf_g
        if opts.gan_power > 0 and self.D_gan is not None:
            g = g + self._gan_terms(p, b, t_src, opts, d_losses)
        return {"src_loss": src.mean(), "dst_loss": dst.mean(), "G_loss": g}, d_losses

    def _style_terms(self, p: dict[str, torch.Tensor], b: Batch, t_dst: torch.Tensor,
                     opts: TrainOptions) -> torch.Tensor:
        res = self.resolution
        out = torch.zeros((), device=t_dst.device)
        if opts.face_style_power > 0:
            content = p["src_dst_nograd"] * p["src_dst_mask"].detach()
            style = (p["dst_dst"] * p["dst_dst_mask"]).detach()
            out = out + L.style_loss(content, style, res // 8, 10000.0 * opts.face_style_power / 100.0)
        if opts.bg_style_power > 0:
            anti = 1.0 - L.blurred_mask(b.target_src_mask, res)  # DeepFaceLab's quirk: the src-target mask
            a, t = p["src_dst"] * anti, t_dst * anti
            w = 10.0 * opts.bg_style_power / 100.0
            out = out + w * (L.dssim(a, t, int(res / 11.6)) + L.mse(a, t))
        return out

    def _true_face(self, src_code: torch.Tensor, dst_code: torch.Tensor,
                   power: float) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.D_code
        d.requires_grad_(False)
        g = power * L.bce_logits(d(src_code), 1.0).mean()
        d.requires_grad_(True)
        d_loss = 0.5 * (L.bce_logits(d(dst_code.detach()), 1.0) + L.bce_logits(d(src_code.detach()), 0.0))
        return g, d_loss.mean()

    def _gan_terms(self, p: dict[str, torch.Tensor], b: Batch, t_src: torch.Tensor, opts: TrainOptions,
                   d_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        pred, target = p["src_src"], t_src
        if opts.masked_training:
            m_b = L.blurred_mask(b.target_src_mask, self.resolution)
            pred, target = pred * m_b, target * m_b
        g, d_loss = self.gan_losses(pred, target, opts.gan_power)
        d_losses["D_gan_loss"] = d_loss.mean()
        g = g.mean()
        if opts.masked_training:
            anti = 1.0 - L.blurred_mask(b.target_src_mask, self.resolution)
            g = g + 1e-6 * L.total_variation_mse(p["src_src"]).mean() \
                + 0.02 * L.mse(p["src_src"] * anti, t_src * anti).mean()
        return g
