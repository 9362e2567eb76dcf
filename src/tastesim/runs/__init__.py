"""The application layer: the runs a user starts (simulation, arms, conversations, analysis, evaluation)."""
