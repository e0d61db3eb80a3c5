"""facelab: a scriptable, tested, offline-first face-swap pipeline."""

__version__ = "0.1.0"
