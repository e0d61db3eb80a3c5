#!/usr/bin/env bash
# Merged frames to result.mp4 (and result_mask.mp4) with the destination audio and frame rate.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab video encode --workspace "$WORKSPACE" "$@"
