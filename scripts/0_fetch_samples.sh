#!/usr/bin/env bash
# Put the two sample videos into the workspace as data_src.mp4 and data_dst.mp4.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab workspace samples --workspace "$WORKSPACE" "$@"
