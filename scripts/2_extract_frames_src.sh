#!/usr/bin/env bash
# Frames of data_src.* into data_src/.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab video extract data_src --workspace "$WORKSPACE" "$@"
