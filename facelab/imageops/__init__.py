"""Pure image operations shared by several stages: colour transfer (training's ``--ct-mode`` and merge) and the
re-crop of a stored face to a model's size and face type.

``color``: every transfer behind the ``COLOR_TRANSFERS`` registry. ``crop``: ``face_to_model_matrix`` and
``crop_face``.
"""
