"""The engine. Importing it first holds torch's CPU kernels to AVX2 (engine/cpu_kernels.py), so that a spec and
seed give the same numbers on every x86-64 machine, and keeps the Hugging Face hub offline (engine/offline.py), so
that nothing downloads at run time; torch itself is imported lazily, inside the engine's code."""
from engine.cpu_kernels import hold_cpu_kernels
from engine.offline import hold_offline

hold_cpu_kernels()
hold_offline()
