#!/usr/bin/env bash
# Train (or resume) the SAEHD model in model/saehd/.
# Extra flags are passed through to main.py.
source "$(dirname "$0")/_env.sh"
facelab train --model saehd --workspace "$WORKSPACE" "$@"
