#!/usr/bin/env bash
# Remove every stage output (frames, aligned faces, model, merged frames, result); input videos stay.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab workspace init --workspace "$WORKSPACE"
facelab workspace clear all --yes --workspace "$WORKSPACE" "$@"
facelab workspace init --workspace "$WORKSPACE"
