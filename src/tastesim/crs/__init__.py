"""Conversational recommenders under test: the protocol, the HTTP adapter and the built-in baseline."""
