"""I2G: a goal and its steps -> one coherent illustration per step (SDXL + pairwise neighbour attention).

Everything of the paper lives here: inference (``attention``, ``anchors``, ``encoding``, ``denoise``, ``lora``,
``pipeline``), fine-tuning (``training``, ``reward``) and the evaluation protocol (``captioning``, ``protocol``,
``evaluation``). What both papers share (training loop, generic metrics, media, data) is the package's core.
"""
