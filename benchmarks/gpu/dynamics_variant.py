"""`dynakd` with the dynamics losses compiled another way than the product does, for the GPU checks of `h200.sh`:
under --torch-compile-mode reduce-overhead the `full` step crashed the process (a segfault, torch 2.11, H200) once
the dynamics were compiled with CUDA graphs of dynamic shapes. Usage: dynamics_variant.py VARIANT dynakd-args...
  student-graphs  the dynamics compiled without CUDA graphs (dynamic shapes); the student keeps the mode's graphs
  static          the dynamics compiled in the run's mode with static shapes (a graph per padded length)"""
import sys

import dynakd.distiller
from dynakd.cli import main

VARIANTS = {
    "student-graphs": lambda compile_dynamics: lambda mode, dynamic=True: compile_dynamics(None),
    "static": lambda compile_dynamics: lambda mode, dynamic=True: compile_dynamics(mode, dynamic=False),
}

if __name__ == "__main__":
    variant, args = sys.argv[1], sys.argv[2:]
    dynakd.distiller.compile_dynamics = VARIANTS[variant](dynakd.distiller.compile_dynamics)
    print(f"dynamics_variant: {variant}", flush=True)
    sys.exit(main(args))
