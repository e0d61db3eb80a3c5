"""Weakly supervised object localisation: BAS and SAT models and losses, CUB-format data, localisation metrics."""

from facelab.wsol.backbones import BAS_BACKBONES
from facelab.wsol.losses import LossWeights, bas_losses, sat_losses
from facelab.wsol.metrics import LocMeter, box_iou, format_table, map_to_box
from facelab.wsol.models import METHODS, WsolArch, WsolOutput, create_wsol_model
from facelab.wsol.pretrained import LoadReport, load_pretrained
from facelab.wsol.vit import VIT_SPECS

__all__ = ["BAS_BACKBONES", "LossWeights", "bas_losses", "sat_losses", "LocMeter", "box_iou", "format_table",
           "map_to_box", "METHODS", "WsolArch", "WsolOutput", "create_wsol_model", "LoadReport", "load_pretrained",
           "VIT_SPECS"]
