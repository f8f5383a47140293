"""Thin, runnable training entry points (``python -m train.<name> --help``); the logic lives in showme_i2g.training."""
