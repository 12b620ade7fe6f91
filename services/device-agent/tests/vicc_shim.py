"""Run Debian's vicc (vsmartcard-vpicc) with whichever pycryptodome the Python has.

vicc imports `Crypto` (pycryptodome's name on PyPI); Debian's python3-pycryptodome installs the
same library as `Cryptodome`. Alias it, put the virtualsmartcard library on the path, run vicc.
Runs under Debian's /usr/bin/python3, not the project's virtual environment.
"""

import importlib
import runpy
import sys

try:
    import Crypto  # noqa: F401
except ImportError:
    sys.modules["Crypto"] = importlib.import_module("Cryptodome")

sys.path.insert(0, "/usr/lib/python3/site-packages/virtualsmartcard")
sys.argv = ["vicc", *sys.argv[1:]]
runpy.run_path("/usr/bin/vicc", run_name="__main__")
