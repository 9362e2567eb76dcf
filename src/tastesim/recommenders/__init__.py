"""Recommenders under test: the batched protocol, the baselines and the diversity re-ranker."""
