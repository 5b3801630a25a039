"""The ``asgispy`` command."""
