"""Losses: set criterion with deep supervision, dice / sigmoid CE / focal / IoU / alignment."""
