"""The one exception type for problems the user can fix."""


class TinyeffError(Exception):
    """A user-fixable problem, printed by the CLI as one sentence without a traceback.

    The message says what was wrong and what to do about it.
    """
