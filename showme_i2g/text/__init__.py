"""Text side of I2G: goal -> steps (planner), step -> clauses, and the CLIP tokenizers shipped for offline use."""
