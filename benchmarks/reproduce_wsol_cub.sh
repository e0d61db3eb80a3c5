#!/usr/bin/env bash
# Both papers' CUB-200-2011 protocol: train BAS (VGG16, ResNet50, InceptionV3, MobileNetV1) and SAT (DeiT-Tiny,
# DeiT-Small) with their papers' recipes from ImageNet weights, evaluate each under its paper's protocol, and print
# one table of the results beside the published numbers (BAS paper Table 1; SAT paper Table 1).
#
#   bash benchmarks/reproduce_wsol_cub.sh DATA PRETRAINED_DIR [OPTIONS of `wsol reproduce`]
#
#   DATA            the CUB_200_2011 folder (images/, images.txt, image_class_labels.txt, train_test_split.txt,
#                   bounding_boxes.txt)
#   PRETRAINED_DIR  the ImageNet weight files the official code loads:
#                     vgg16.pth                             torchvision VGG16 (no BN)
#                     resnet50-19c8e357.pth                 torchvision ResNet50 v1
#                     inception_v3_google-1a9a5a14.pth      torchvision InceptionV3
#                     mobilenet_v1_with_relu_69_5.pth       MobileNetV1 with ReLU, 69.5 % top-1 (model.N keys)
#                     deit_tiny_patch16_224-a1311bcf.pth    DeiT-Tiny (timm keys, under "model")
#                     deit_small_patch16_224-cd65a155.pth   DeiT-Small
#   OPTIONS         passed on, e.g. --out runs/cub, --only bas:vgg16, --device cuda, --micro-batch 64 (SAT's batch
#                   of 256 in pieces where memory is short); --epochs / --size / --batch replace every recipe's value
#
# Runs go to --out (default runs/wsol_cub), one model folder each with its results.json; a stopped run resumes.
# Environment: PYTHON (default: the repository's .venv, else python3).
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
data=$1
pretrained=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
exec "$python" "$root/main.py" wsol reproduce --data "$data" --pretrained-dir "$pretrained" --recipe paper "$@"
