"""The one exception type the command line turns into a one-line message and exit code 2."""


class UserError(Exception):
    """A mistake in what the user asked for (bad flag, missing file, incompatible checkpoint).

    The message must say what is wrong and how to fix it; ``memformer`` prints it as
    ``memformer: error: <message>`` and exits with code 2, without a traceback.
    """
