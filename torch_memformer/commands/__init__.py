"""Sub-commands of ``memformer``; every public module here is one command (see ``cli.py``)."""
