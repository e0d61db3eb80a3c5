#!/usr/bin/env bash
# Detect, align and save the source faces into data_src/aligned/.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab extract --side src --workspace "$WORKSPACE" "$@"
