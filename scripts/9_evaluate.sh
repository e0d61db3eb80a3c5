#!/usr/bin/env bash
# Measure the swap: identity, expression, pose, structure, stability; writes evaluation.json/png.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab evaluate --workspace "$WORKSPACE" "$@"
