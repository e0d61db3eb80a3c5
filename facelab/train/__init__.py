"""Training: it owns optimizers, backward, clipping, the NaN guard, mixed precision and DDP wrapping.

``loop`` (create / resume / stop / save / roll back), ``step`` (one iteration over a model's forward and losses),
``optim`` (DeepFaceLab's AdaBelief and RMSprop), ``data`` + ``augment`` + ``loader`` (the face pipeline in worker
processes), ``checkpoint`` (training checkpoints in the shared format), ``preview``, ``distributed`` (torchrun),
``index`` (the "training" of a training-free model: indexing the source faces). Models (``facelab.models``)
never import this package.
"""
