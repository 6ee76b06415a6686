"""User errors: wrong input a user can fix (a path, an option, a data file without the needed columns).

The CLI prints them as one line (`interp <command>: error: ...`) and exits with status 2, without a
traceback (`interp --debug ...` shows it). Library code raises ordinary exceptions; commands translate
the ones caused by user input into `UserError` before any model is loaded.
"""
from __future__ import annotations


class UserError(ValueError):
    """Wrong input a user can act on; the message says what is wrong and how to fix it. A ValueError, so
    code that catches wrong values from the library catches it too."""
