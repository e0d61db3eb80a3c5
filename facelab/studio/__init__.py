"""``studio``: a local web workbench over the stage functions (merge tuning, training monitor, face sets,
workspace overview). A thin room: every render, merge, sort and move goes through the functions the CLI calls.

Security: the server binds to 127.0.0.1 unless told otherwise, every request carries a random token, and every path
it serves or writes is checked to lie inside the workspace (:mod:`facelab.studio.security`).
"""
