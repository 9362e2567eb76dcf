"""``python -m tastesim.cli``: the ``tastesim`` command."""

from tastesim.cli import main

main()
