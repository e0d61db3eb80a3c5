"""Swap quality: pure measures (``metrics``: identity, expression, pose, SSIM, sharpness and its resolution
ceiling, jitter), the report over the workspace's swaps side by side (``report``), its figure (``plot``) and its
summary lines (``summary``)."""
