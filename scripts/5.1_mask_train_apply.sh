#!/usr/bin/env bash
# Learn occlusion-aware face masks (weak supervision) and store them in both sides' face files.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab mask train --workspace "$WORKSPACE" "$@"
facelab mask apply --side src --workspace "$WORKSPACE"
facelab mask apply --side dst --workspace "$WORKSPACE"
