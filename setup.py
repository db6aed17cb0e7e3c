"""Build glue that setup.cfg cannot express: the cffi module, the static pyrunc-init exec stub, the code cache."""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "csrc"))
from build_stub import stub_compiler  # noqa: E402  (csrc/build_stub.py: the tests build their stubs alike)


class BuildWithInit(build_ext):
    """build_ext plus csrc/pyrunc_init.c -> pyrunc/pyrunc-init (a static executable, see that file for why), and
    the empty pyrunc/_code.cache of a wheel."""

    def run(self):
        super().run()
        src = os.path.join(HERE, "csrc", "pyrunc_init.c")
        dests = [os.path.join(HERE, "pyrunc", "pyrunc-init")]
        if not self.inplace:
            dests.append(os.path.join(self.build_lib, "pyrunc", "pyrunc-init"))
        cc = stub_compiler()
        for dest in dests:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            subprocess.check_call([*cc, "-static", "-Os", "-s", "-Wall", "-o", dest, src])
        if not self.inplace:  # the code cache, empty: the script's first run fills it (pyrunc.CodeCache); an
            # editable (in-place) build has none, so its modules always come from the source tree
            open(os.path.join(self.build_lib, "pyrunc", "_code.cache"), "wb").close()


setup(cffi_modules=["csrc/build_helper.py:ffibuilder", "csrc/build_seccomp.py:ffibuilder"], cmdclass={"build_ext": BuildWithInit})
