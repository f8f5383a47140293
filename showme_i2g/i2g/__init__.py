"""I2G: a goal and its steps -> one coherent illustration per step (SDXL + pairwise neighbour attention)."""
