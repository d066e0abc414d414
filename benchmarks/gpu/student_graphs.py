"""`dynakd` with the dynamics losses compiled without CUDA graphs, whatever --torch-compile-mode says; the student
keeps the mode. A GPU check in `h200.sh` (bench-graphs-student): under reduce-overhead, the full step crashed the
process (a segfault, torch 2.11 on an H200) once the dynamics were compiled with CUDA graphs too."""
import sys

import dynakd.distiller
from dynakd.cli import main

compile_dynamics = dynakd.distiller.compile_dynamics
dynakd.distiller.compile_dynamics = lambda mode: compile_dynamics(None)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
