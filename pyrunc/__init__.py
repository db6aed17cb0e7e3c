"""pyrunc: a runc-compatible OCI container runtime.

Nothing happens at import time: the CLI, the library and the syscall boundary are imported by whoever needs them.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"
