"""Experiments on top of the library: sweeps (``ablate``) and their reports."""
