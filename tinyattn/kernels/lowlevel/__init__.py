"""Machine-level pieces under the compiled kernels (a register-tile product in LLVM IR, vectorisable
maths, BLAS thread control); a learner can skip this folder (see README.md here)."""
