#!/usr/bin/env bash
# Swap every destination face into data_dst/merged/ and data_dst/merged_mask/.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab merge --workspace "$WORKSPACE" "$@"
