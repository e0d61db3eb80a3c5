"""Weakly supervised object localisation: BAS and SAT models and losses, CUB-format data, localisation metrics."""

# Backbones register here, explicitly: the CNNs, then InceptionV3 (the ViTs register in vit).
from facelab.wsol.backbones import BAS_BACKBONES
from facelab.wsol.inception import inception_v3_parts
from facelab.wsol.losses import LossWeights, bas_losses, sat_losses
from facelab.wsol.metrics import box_iou, format_table, loc_accuracy, map_to_box, max_box_acc_v2
from facelab.wsol.models import BACKBONES, DEFAULT_BACKBONE, METHODS, WsolArch, WsolOutput, create_wsol_model
from facelab.wsol.parts import BackboneParts
from facelab.wsol.pretrained import LoadReport, load_pretrained
from facelab.wsol.recipes import RECIPES, Recipe, recipe_for
from facelab.wsol.vit import SAT_BACKBONES, VIT_SPECS

__all__ = ["BACKBONES", "BAS_BACKBONES", "BackboneParts", "DEFAULT_BACKBONE", "LossWeights", "bas_losses",
           "sat_losses", "box_iou", "format_table", "inception_v3_parts", "loc_accuracy", "map_to_box",
           "max_box_acc_v2", "METHODS", "RECIPES", "Recipe", "recipe_for", "SAT_BACKBONES", "WsolArch", "WsolOutput",
           "create_wsol_model", "LoadReport", "load_pretrained", "VIT_SPECS"]
