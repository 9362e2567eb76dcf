"""The Gymnasium environment: one simulated user per episode (``tastesim/TasteSim-v0``), a vector
environment stepping many users through the batched decision model, and a Stable-Baselines3 adapter."""
