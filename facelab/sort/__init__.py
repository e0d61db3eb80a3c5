"""Face-set tools: sort (rename in order, rejects to ``<dir>_trash``), recover names, contact sheets."""

from facelab.sort.apply import SortResult, recover_names, sort_faces, trash_dir_for
from facelab.sort.methods import SORT_METHODS, SortPlan
from facelab.sort.sheet import contact_sheet

__all__ = ["SORT_METHODS", "SortPlan", "SortResult", "contact_sheet", "recover_names", "sort_faces",
           "trash_dir_for"]
