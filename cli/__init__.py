"""`healer` command-line interface."""
