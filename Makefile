# anderson_mpi: install, run, test, figures, bench.
# Everything is overridable:  make test NP=2 MPIEXEC=srun  |  make run PYTHON=python3.12
SHELL := /bin/bash

PYTHON   ?= python3
VENV     ?= .venv
VPY      := $(VENV)/bin/python
MPIEXEC  ?= mpirun
NP       ?= 4
RUN_NP   ?= 2
JOB      ?= jobs/demo.toml
RESULTS  ?= results/demo
# Debian's locations; on a cluster point them at the modules (see README, "Running on a cluster").
# h5py takes exactly one HDF5 location and stops with "Specify only one of" given two: HDF5_DIR (a
# prefix holding include/ and lib/), or HDF5_INCLUDEDIR/HDF5_LIBDIR, or a pkg-config name. The
# pkg-config name is passed only when none of the others is set (here or in the environment).
HDF5_PKGCONFIG_NAME ?= hdf5-openmpi
H5PY_HDF5_WHERE := $(strip $(foreach v,HDF5_DIR HDF5_INCLUDEDIR HDF5_LIBDIR,$(if $($(v)),$(v)=$($(v)))))
ifneq ($(H5PY_HDF5_WHERE),)
H5PY_HDF5 := env -u HDF5_PKGCONFIG_NAME $(foreach v,HDF5_DIR HDF5_INCLUDEDIR HDF5_LIBDIR,$(if $($(v)),$(v)='$($(v))'))
else
H5PY_HDF5_WHERE := HDF5_PKGCONFIG_NAME=$(HDF5_PKGCONFIG_NAME)
H5PY_HDF5 := HDF5_PKGCONFIG_NAME='$(HDF5_PKGCONFIG_NAME)'
endif
# A prefix without parallel HDF5 would fail deep in h5py's compile: say so first.
H5PY_HDF5_CHECK := $(if $(HDF5_DIR),grep -qs "define H5_HAVE_PARALLEL 1" '$(HDF5_DIR)'/include/H5pubconf*.h || \
  { echo "install: HDF5_DIR=$(HDF5_DIR) is no parallel HDF5 prefix (want include/H5pubconf.h with H5_HAVE_PARALLEL, and lib/)"; exit 2; };)
PETSC_DIR ?= /usr/lib/petscdir/petsc3.18/x86_64-linux-gnu-complex
MPICC    ?= mpicc
SKIP_APT ?= $(shell command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] || echo 1)

# libopenblas0-pthread: Debian's PETSc/MUMPS link the system libblas.so.3, which is otherwise the
# (several times slower) reference BLAS; installing it switches the alternative to OpenBLAS.
APT_PACKAGES := openmpi-bin libopenmpi-dev libhdf5-openmpi-dev pkg-config python3-venv python3-dev \
                libopenblas0-pthread
APT_PETSC    := libpetsc-complex3.18-dev
# PETSc is optional (solver = "petsc" only): WITH_PETSC=auto builds petsc4py when PETSC_DIR holds a
# PETSc (on Debian as root, apt installs one), 0 never, 1 always (fails without PETSc).
WITH_PETSC ?= auto
# setuptools >=77 for h5py's metadata, <81 for petsc4py 3.18's link step (see ENVIRONMENT.md)
BUILD_TOOLS := "Cython>=3,<4" pkgconfig "setuptools>=77,<81" packaging wheel
# numba: the compiled kernels of the QSSEP and dephasing chains (4-6x the vectorized numpy path,
# which is used without it; anderson_mpi/engines/_chain_jit.py)
PY_PACKAGES := numpy scipy mpi4py pytest pytest-mpi threadpoolctl matplotlib numba
# A repeat `make install` only looks these up (no import: importing them all costs seconds).
PY_MODULES  := numpy scipy mpi4py pytest pytest_mpi threadpoolctl matplotlib numba Cython pkgconfig
FIND_SPECS   = -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))"
ifeq ($(WITH_PETSC),auto)
HAVE_PETSC := $(shell [ "$(SKIP_APT)" != 1 ] || [ -f $(PETSC_DIR)/include/petscversion.h ] && echo 1 || echo 0)
else
HAVE_PETSC := $(WITH_PETSC)
endif

# Open MPI as root and with more ranks than cores (CI: 2 cores, 4 ranks); one BLAS thread per rank.
export OMPI_ALLOW_RUN_AS_ROOT ?= 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM ?= 1
export OMPI_MCA_rmaps_base_oversubscribe ?= 1
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: install system venv run test test-serial test-slurm test-cluster-route figures bench clean distclean

install: system venv
	@$(VPY) -c "import anderson_mpi, h5py, mpi4py, scipy, importlib.util as u; \
	assert h5py.get_config().mpi, 'h5py lacks MPI'; \
	p = u.find_spec('petsc4py'); \
	print('anderson_mpi', anderson_mpi.__version__, '| h5py', h5py.__version__, 'mpi=True | petsc4py', \
	      __import__('petsc4py').__version__ if p else 'not installed (solver = \"petsc\" unavailable)', '| ready')"

system:
ifeq ($(SKIP_APT),1)
	@echo "install: no apt-get as root here: using the MPI, HDF5 and PETSc the environment provides"
else
	@missing=""; for p in $(APT_PACKAGES) $(if $(filter 1,$(HAVE_PETSC)),$(APT_PETSC)); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "install: apt-get install$$missing"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "install: system packages present"; fi
endif

venv:
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	@$(VPY) $(FIND_SPECS) $(PY_MODULES) 2>/dev/null || \
	  { $(VPY) -m pip install -q -U pip && $(VPY) -m pip install -q $(PY_PACKAGES) $(BUILD_TOOLS); }
	@# h5py against parallel HDF5 (never with build isolation: it would compile an sdist mpi4py)
	@$(VPY) -c "import h5py, sys; sys.exit(not h5py.get_config().mpi)" 2>/dev/null || \
	  { $(H5PY_HDF5_CHECK) echo "install: building h5py against parallel HDF5 at $(H5PY_HDF5_WHERE) (~2 min)"; \
	    CC=$(MPICC) HDF5_MPI=ON H5PY_SETUP_REQUIRES=0 $(H5PY_HDF5) \
	    $(VPY) -m pip install -q --no-build-isolation --no-binary=h5py --force-reinstall --no-deps h5py; }
	@# petsc4py against an existing complex PETSc (never let pip build PETSc itself)
ifeq ($(HAVE_PETSC),1)
	@$(VPY) -c "import petsc4py; petsc4py.init(); from petsc4py import PETSc; assert PETSc.ScalarType().dtype.kind == 'c'" 2>/dev/null || \
	  { v=$$(awk '/define PETSC_VERSION_(MAJOR|MINOR|SUBMINOR) /{printf "%s%s", s, $$3; s="."}' $(PETSC_DIR)/include/petscversion.h); \
	    echo "install: building petsc4py==$$v against PETSC_DIR=$(PETSC_DIR) (~2 min)"; \
	    PETSC_DIR=$(PETSC_DIR) PETSC_ARCH= $(VPY) -m pip install -q --no-build-isolation petsc4py==$$v; }
else
	@echo "install: no PETSc at PETSC_DIR=$(PETSC_DIR) (or WITH_PETSC=0): petsc4py skipped; solver = \"petsc\" unavailable"
endif
	@(cd / && $(CURDIR)/$(VPY) $(FIND_SPECS) anderson_mpi) 2>/dev/null || $(VPY) -m pip install -q --no-build-isolation --no-deps -e .

# The main job on the small embedded default: the demo sweep, then its figures.
run:
	@[ -x $(VPY) ] && $(VPY) -c "import anderson_mpi, h5py" 2>/dev/null || $(MAKE) install
	$(MPIEXEC) -n $(RUN_NP) $(VPY) -m anderson_mpi run $(JOB) --out $(RESULTS) --resume
	@if [ -d analysis ] && $(VPY) -c "import analysis.figures" 2>/dev/null; then $(MAKE) --no-print-directory figures RESULTS=$(RESULTS); fi

figures:
	$(VPY) -m analysis $(RESULTS)

# The design card's `mpirun -n 4 pytest`: every rank runs the collective tests; the serial ones are
# dealt round-robin over the ranks. tests/conftest.py gives every run a fresh temporary directory
# with one subdirectory per MPI rank (the rank from MPI itself, so srun and two users don't collide).
# MPIEXEC reaches the tests too (the tests that start jobs of their own launch them with it), and -rs
# names the reason of every skip. Each run gets a TMPDIR of its own, removed when it passes: Open MPI
# keeps its session directory there (ompi.<host>.<uid>/pid.N, ~8 MB), and an mpirun that a test
# kills on purpose cannot remove its own. A failing run keeps it (with the tests' files) and says where.
PYTEST_RUN = t=$$(mktemp -d -t anderson-test.XXXXXX) || exit 1; echo "TMPDIR=$$t $(1)"; \
	TMPDIR=$$t MPIEXEC='$(MPIEXEC)' $(1); rc=$$?; \
	if [ $$rc = 0 ]; then rm -rf "$$t"; else echo "$@: status $$rc; temporary files kept in $$t"; fi; exit $$rc

test:
	@$(call PYTEST_RUN,$(MPIEXEC) -n $(NP) $(VPY) -m pytest --with-mpi -q -rs --color=no -p no:cacheprovider tests)

test-serial:
	@$(call PYTEST_RUN,$(VPY) -m pytest -q -rs -p no:cacheprovider tests)

# The README's cluster recipe, as a user without root would follow it (root only to create that user
# and remove it again): `make install SKIP_APT=1 WITH_PETSC=0 HDF5_DIR=<Debian's parallel HDF5
# prefix>` in a copy of this checkout, then a short 2-rank job checked from its HDF5 file. Needs the
# system packages of `make install` (as root) first; ~3-5 min on 2 cores (h5py compiles).
test-cluster-route:
	bash tests/cluster/run_cluster_route.sh

# The Slurm job suite on a real single-node Slurm on localhost (root: installs munge + slurm-wlm,
# starts the daemons and stops them by PID, also on failure). ~4-5 min on 2 idle cores.
test-slurm:
	@[ -x $(VPY) ] && $(VPY) -c "import anderson_mpi.cli, h5py" 2>/dev/null || $(MAKE) install
	PYTHON=$(abspath $(VPY)) bash tests/slurm/run_slurm_test.sh

bench:
	$(VPY) -m anderson_mpi.bench
	@if $(VPY) -c "import petsc4py" 2>/dev/null; then \
	  $(MPIEXEC) -n 1 $(VPY) -m anderson_mpi.bench.petsc && $(MPIEXEC) -n 2 $(VPY) -m anderson_mpi.bench.petsc; \
	else echo "bench: petsc4py not installed, PETSc section skipped"; fi

# Build artefacts only. results/ and every output file are the user's data: no target removes them.
clean:
	rm -rf build *.egg-info .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
