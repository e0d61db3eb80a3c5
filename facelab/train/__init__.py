"""Training: data pipeline, loop, checkpoints, previews, distributed."""
