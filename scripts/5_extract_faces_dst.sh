#!/usr/bin/env bash
# Detect, align and save the destination faces into data_dst/aligned/ (with debug frames).
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab extract --side dst --debug --workspace "$WORKSPACE" "$@"
