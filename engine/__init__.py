"""The engine. Importing it first holds torch's CPU kernels to AVX2 (engine/cpu_kernels.py), so that a spec and
seed give the same numbers on every x86-64 machine; torch itself is imported lazily, inside the engine's code."""
from engine.cpu_kernels import hold_cpu_kernels

hold_cpu_kernels()
