import os
import sys

# the gradcases_*.py files are imported by name
sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("MPLBACKEND", "Agg")
