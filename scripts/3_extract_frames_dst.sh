#!/usr/bin/env bash
# Frames of data_dst.* into data_dst/ at the native frame rate.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab video extract data_dst --fps 0 --workspace "$WORKSPACE" "$@"
