"""ShowMe: photo -> edited image or short video, built on a native port of DynamiCrafter.

Everything of the paper lives here: the port (``dynamicrafter/``), the edit and animate adapters (``adapters``),
conditioning and sampling (``conditioning``, ``pipeline``), the two training stages and their rewards
(``training``, ``rewards/``) and the evaluation tables (``evaluation``).
"""
