import os
import sys

# One BLAS thread per test process: the tests use small matrices, where threads only add overhead
# and, on a loaded 2-core CI machine, oversubscription. Must be set before NumPy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# the gradcases_*.py and torch_parity.py helpers are imported by name
sys.path.insert(0, os.path.dirname(__file__))
