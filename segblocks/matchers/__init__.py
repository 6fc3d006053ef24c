"""Matchers: take predictions and targets, return index pairs."""
