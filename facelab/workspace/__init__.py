"""The workspace: every path of the layout, image I/O and the face file format."""

from facelab.workspace.faces import (
    Face,
    FaceMeta,
    MaskRecord,
    list_faces,
    read_face,
    read_meta,
    update_meta,
    write_face,
)
from facelab.workspace.images import IMAGE_EXTS, list_images, read_image, write_image
from facelab.workspace.layout import LAYOUT_VERSION, Side, Workspace

__all__ = [
    "Face", "FaceMeta", "MaskRecord", "list_faces", "read_face", "read_meta", "update_meta", "write_face",
    "IMAGE_EXTS", "list_images", "read_image", "write_image",
    "LAYOUT_VERSION", "Side", "Workspace",
]
