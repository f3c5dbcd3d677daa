"""One exception type for bad user input: entrypoints turn it into a one-line message and exit code 2."""
import functools
import sys


class UserError(Exception):
    """Input the user can fix (a flag, a path, a file): the message says what and how."""


def exit_on_user_error(main):
    """Decorate an entrypoint's main(): a UserError prints one line and exits non-zero, no traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
