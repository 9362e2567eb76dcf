"""LLM access for tastesim: backends behind one Protocol, the reply cache, lenient parsing, a loopback server."""
