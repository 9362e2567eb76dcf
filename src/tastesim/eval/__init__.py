"""Fidelity evaluation of the decision models against real held-out data."""
