"""Optional weight files: the catalogue (what, where from, how checked) and fetching with resume and checks."""

from facelab.weights.catalog import CATALOG, MODELS_ENV, WeightFile, find_file, get_weight, models_dir, resolve_onnx
from facelab.weights.fetch import Check, FetchResult, check_file, fetch_weight, verify_weight

__all__ = ["CATALOG", "MODELS_ENV", "Check", "FetchResult", "WeightFile", "check_file", "fetch_weight", "find_file",
           "get_weight", "models_dir", "resolve_onnx", "verify_weight"]
