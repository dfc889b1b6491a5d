"""Errors the engine raises on purpose; the CLI turns them into one line and an exit code."""
from __future__ import annotations


class SpecError(ValueError):
    """Bad input (a name, a file, a hyperparameter): exit 2, nothing queued or written.

    `field` names the spec entry at fault (`model`, `data`, `deletion`, `requests`, a parameter such as
    `alpha`) so a form can put the message beside it; None when no single field is to blame."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class RunFailed(RuntimeError):
    """A run that started and failed mid-way (NaN loss, out of memory): exit 1, session kept."""


class Cancelled(RuntimeError):
    """The run was asked to stop between steps."""


UNREADABLE = {  # errno -> what is wrong and what would be right
    "EACCES": ("permission denied", "make it readable by this user"),
    "EPERM": ("permission denied", "make it readable by this user"),
    "ELOOP": ("a symbolic link that loops", "point the link at the real file"),
    "EISDIR": ("a folder where a file is expected", "give the file"),
    "ENOTDIR": ("a path through a file", "give the folder's path"),
    "ENAMETOOLONG": ("a name too long for the file system", "give a shorter path"),
}


def reading_inputs(check):
    """`check` (a spec's validation, the engine's preflight) with an input it cannot read (an unreadable file or
    folder, a symbolic link that loops) refused as bad input, in one line naming the path, instead of an OSError
    out of whichever reader met it first."""
    import errno
    import functools

    @functools.wraps(check)
    def checked(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except OSError as error:
            if not isinstance(error.errno, int):
                raise
            name = errno.errorcode.get(error.errno, "")
            what, remedy = UNREADABLE.get(name, (error.strerror or name.lower(), "check the path"))
            path = error.filename if error.filename is not None else "an input"
            raise SpecError(f"{path} cannot be read: {what}; {remedy}") from None
    return checked
