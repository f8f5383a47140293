"""Runnable evaluation entry points (``python -m eval.<name> --help``): generate, i2g, showme.

They parse arguments, read and write files and print tables; the models and metrics live in ``showme_i2g``.
"""
