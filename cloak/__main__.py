"""`python -m cloak` runs the same app as the `cloak` command."""

from cli import main

main()
