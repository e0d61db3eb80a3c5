"""SAEHD: DeepFaceLab's main model (df / liae with -u -d -t variants)."""

from facelab.models.saehd.config import SAEHDArch, parse_archi
from facelab.models.saehd.model import SAEHD

__all__ = ["SAEHD", "SAEHDArch", "parse_archi"]
