"""``python -m slidescout``: the same as the ``slidescout`` command."""

from slidescout.cli import main

main()
