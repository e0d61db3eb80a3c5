"""Errors a user can act on.

A :class:`FacelabError` carries a one-line message that names the file involved and what to do about it. The CLI
prints it without a traceback (``--debug`` shows one) and exits non-zero.
"""

from __future__ import annotations


class FacelabError(Exception):
    """An error caused by input or environment, with a message meant for the user."""


class FaceFileError(FacelabError):
    """A face file that is missing, corrupt, foreign or hostile. Stages skip such files and count them."""
