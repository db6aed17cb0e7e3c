"""pyrunc.log: the logrus-style Logger, which lives in pyrunc/errors.py (one module less for every verb); this
name stays for the importers that use it (the shim, tests)."""

from .errors import Logger  # noqa: F401
