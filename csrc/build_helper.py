"""cffi builder for pyrunc._helper (out-of-line API mode).

The cdef is pyrunc_helper.h itself, so the header is the single description of the C API.  setup.py names this
file in cffi_modules; `python3 csrc/build_helper.py` builds the module in place for development.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
with open(os.path.join(HERE, "pyrunc_helper.h")) as f:
    ffibuilder.cdef("\n".join(line for line in f if not line.startswith("#")))
with open(os.path.join(HERE, "pyrunc_helper.c")) as f:
    ffibuilder.set_source("pyrunc._helper", f.read(), extra_compile_args=["-O2", "-Wall"])

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(HERE, ".."), verbose=False)  # in place: pyrunc/_helper.*.so
