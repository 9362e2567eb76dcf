"""Conversations: queries written from memory, multi-turn sessions with a CRS, and the stress runner."""
