"""Inference: decoding (greedy, beam) and item-slot filling."""
