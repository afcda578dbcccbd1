"""`alexnet-doctor`: checks a machine's devices before a long job (checks.py), with the
numerics driver that the checks and the tests share (numerics.py)."""
