"""Heads that read query embeddings and mask features: masks, classes, IoU, LDP, MASE, ..."""
