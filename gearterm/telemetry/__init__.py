"""Readings of the machine the model runs on: GPU power and energy per token."""
