"""Scattering states by an MPI-distributed sparse direct solve (PETSc + MUMPS).

A second, independent engine next to the transfer matrix (``transfer.py``): one sample is
spread over the ranks of a communicator, so a cube too large for one rank's memory can still
be solved, and the two methods cross-check each other.

Method
------
Site ``(ix, iy, iz)`` has row ``(ix * Ny + iy) * Nz + iz``; every rank owns a contiguous block
of whole slices. The distributed complex matrix (MPIAIJ) is

    A = E - H - Sigma_L - Sigma_R,    Sigma = -tx U diag(mu) U^+

(``Sigma`` dense ``N_perp x N_perp`` on slice 0 for lead L and on slice ``Nx - 1`` for lead R,
summed when ``Nx = 1``), factored once per energy by MUMPS (LU). ``mu`` is the outgoing factor
per mode (docs/theory.md §3.4): ``exp(i kx)`` for an open channel, the decaying root ``lambda_<`` for an
evanescent one, whose real ``Sigma_k = -tx lambda_<`` shifts the surface without broadening it
(the clean limit checks the sign: a clean sample gives plane waves and t = 1 per open channel).
The scattering states follow from the lead-surface columns of ``G^r = A^{-1}`` (Fisher-Lee).

Fisher-Lee relation (derivation). Take a right incomer with incoming amplitudes ``a`` (one
column per open mode, nonzero only on the open rows). In the right lead
``Psi_{Nx-1} = U (a + b)`` and ``Psi_{Nx} = U (Lbar a + M b)``, ``M = diag(mu)``,
``Lbar = diag(exp(-i kx))`` on the open rows; the outgoing part is
``U M b = U M U^+ (Psi_{Nx-1} - U a) = -(Sigma / tx) (Psi_{Nx-1} - U a)``. Inserting this into
Schroedinger's equation on slice ``Nx - 1``,
``(E - H_slice) Psi_{Nx-1} + tx Psi_{Nx-2} + tx Psi_{Nx} = 0``, gives

    (A Psi)_{Nx-1} = tx U (M - Lbar) a = 2 i tx U diag(sin kx) a = i U diag(v) a

(``a`` lives on the open rows, where ``M - Lbar = 2 i sin kx``), and ``(A Psi)_x = 0`` on every
other slice (the left lead only carries outgoing and decaying waves, which ``Sigma_L`` accounts
for). With unit incoming current, ``a = 1/sqrt(v)`` on the open rows:

    psi_R = i G^r[:, slice Nx-1] U_open diag(sqrt(v)),   psi_L = i G^r[:, slice 0] U_open diag(sqrt(v)),

``U_open`` the columns of the open modes, the second by the same argument at the left lead. So
each lead needs ``n_open`` right-hand sides ``B = i U_open diag(sqrt v)`` placed on its surface
slice: one multi-RHS solve
(``MatMatSolve``, ``B`` passed to MUMPS as a sparse right-hand side) against the
factorization; both leads share it when their energies are equal. Transmission and reflection
are read off the surface slices on the open rows: for "R", ``t = diag(sqrt v) U_open^+ Psi_0``
and ``r = diag(sqrt v) U_open^+ Psi_{Nx-1} - 1`` (the incoming wave removed); "L" mirrored. The
relation is checked against the transfer matrix to ~1e-13 in ``tests/test_petsc.py``.

Parallel conventions
--------------------
Every function takes the communicator explicitly (``comm=None`` means ``MPI.COMM_WORLD``, at
the edge only), is collective over it, and needs the same inputs on every rank of ``comm``
(checked). The solution is gathered on every rank at the end (in-place ``Allgatherv``), so
the observables code is shared with the transfer matrix; that copy of all ``psi``
(``Nx N_perp n_open`` complex numbers per lead) on every rank is what bounds the per-rank memory of
the public functions. `local_surface_solve` is the distributed core without the gather.
petsc4py is imported lazily (this module imports without it) and PETSc is initialised on
``COMM_SELF`` (see `load_petsc`).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..system import (DEFAULT_HOPPING, E_MINUS, E_PLUS, ModeMatrices, ScatteringSetup,
                     ScatteringStates, ring_hopping, check_potential, flux_error)

__all__ = ["petsc_scattering_states", "petsc_mode_matrices", "solve_mode_matrices",
           "local_surface_solve", "slice_partition", "LocalSolution"]


def load_petsc():
    """Import petsc4py's PETSc module, initialising PETSc on first use.

    PETSc is initialised with ``PETSC_COMM_WORLD = MPI_COMM_SELF``, deliberately. PETSc can be
    initialised only once per process, while the solves here run on whatever communicator the
    caller passes (all of ``COMM_WORLD``, the groups of a ``Comm.Split``, ``COMM_SELF``), and
    every PETSc object is created on that explicit communicator, which is what distributes the
    work. What ``PETSC_COMM_WORLD`` still governs is PETSc's own process-wide collectives, and
    those must not span ranks: petsc4py 3.18 runs ``garbage_cleanup(PETSC_COMM_WORLD)`` at
    interpreter exit, an ``MPI_Comm_dup`` that hangs the job when PETSc was used on some ranks
    only (a serial test on one rank, a group that finished early). On ``COMM_SELF`` it is local.
    ``args=None`` keeps PETSc from parsing ``sys.argv`` (pytest's or the CLI's options are not
    PETSc options). A second call is a no-op, as is this one if petsc4py was already
    initialised elsewhere (then that choice of communicator stands).
    """
    try:
        import petsc4py
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError("the 'petsc' solver needs petsc4py built against a complex PETSc "
                          "with MUMPS (see ENVIRONMENT.md / `make install`)") from err
    from mpi4py import MPI
    petsc4py.init(comm=MPI.COMM_SELF)
    from petsc4py import PETSc
    if np.dtype(PETSc.ScalarType).kind != "c":
        raise ImportError(f"petsc4py is built with real scalars ({PETSc.ScalarType.__name__}); "
                          "the scattering problem needs a complex PETSc")
    return PETSc


def _world(comm):
    if comm is None:
        from mpi4py import MPI
        return MPI.COMM_WORLD
    return comm


def slice_partition(Nx, size):
    """Slices per rank: ``Nx`` whole slices split as evenly as possible over ``size`` ranks.

    Parameters
    ----------
    Nx : int
        Number of slices.
    size : int
        Number of ranks.

    Returns
    -------
    ndarray of int, shape (size + 1,)
        ``bounds``: rank ``r`` owns slices ``bounds[r] .. bounds[r + 1] - 1``. Ranks beyond
        ``Nx`` own none (allowed: they still take part in MUMPS).
    """
    counts = np.full(size, Nx // size)
    counts[: Nx % size] += 1
    return np.concatenate([[0], np.cumsum(counts)])


def _check_same_everywhere(comm, *items):
    """Raise ``ValueError`` on every rank if the inputs differ between the ranks of ``comm``.

    A collective solve with different samples on different ranks would silently mix them (or
    hang in MUMPS if the sizes differ); this costs one small allgather. All ranks see the same
    gathered tokens, so they all raise together.
    """
    token = tuple(zlib.crc32(np.ascontiguousarray(x).tobytes()) if isinstance(x, np.ndarray)
                  else x for x in items)
    tokens = comm.allgather(token)
    if any(t != tokens[0] for t in tokens):
        raise ValueError("petsc solver: the ranks of comm passed different inputs "
                         "(V, energy, lead or hopping); all ranks must pass the same sample")


def _local_rows(V, energy, hopping, sigma, first, last):
    """Rows of ``A = E - H - Sigma_L - Sigma_R`` for slices ``first .. last - 1`` (CSR).

    Returns a ``scipy.sparse.csr_matrix`` of shape ``((last - first) N_perp, Nx N_perp)``
    with global column indices, sorted, no duplicates.
    """
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    tx, ty, tz = hopping
    n_slices = last - first
    n_local = n_slices * n_perp
    # T_perp sparse: the dense version (transverse_hopping) is N_perp^2 and would dominate
    # the memory of a large cube.
    t_perp = (sp.kron(sp.csr_matrix(ring_hopping(Ny, ty)), sp.identity(Nz))
              + sp.kron(sp.identity(Ny), sp.csr_matrix(ring_hopping(Nz, tz))))
    on_slice = energy * sp.identity(n_perp) + t_perp            # E - H_slice without V

    def slice_pattern(shift):
        # (owned slices) x (all slices) pattern with a 1 at (s - first, s + shift), dropping
        # columns outside 0..Nx-1 (built by hand: sp.eye rejects offsets past the matrix,
        # which happens for ranks that own no slice or for Nx = 1).
        owned = np.arange(first, last)
        keep = (owned + shift >= 0) & (owned + shift < Nx)
        return sp.csr_matrix((np.ones(keep.sum()), (owned[keep] - first, owned[keep] + shift)),
                             shape=(n_slices, Nx))

    local = sp.kron(slice_pattern(0), on_slice, format="csr")
    # x bonds: -H has +tx between neighbouring slices; beyond 0..Nx-1 are the leads, which
    # enter through Sigma, not as matrix entries.
    local = local + sp.kron(slice_pattern(1) + slice_pattern(-1), tx * sp.identity(n_perp),
                            format="csr")
    rows = np.arange(n_local)
    local = local - sp.csr_matrix((V[first:last].ravel(), (rows, first * n_perp + rows)),
                                  shape=local.shape)
    # -Sigma on the surface slices (twice on the single slice when Nx = 1: both leads).
    block_r, block_c = np.divmod(np.arange(n_perp * n_perp), n_perp)
    for surface in (0, Nx - 1):
        if first <= surface < last:
            local = local - sp.csr_matrix(
                (sigma.ravel(), ((surface - first) * n_perp + block_r, surface * n_perp + block_c)),
                shape=local.shape)
    local = sp.csr_matrix(local, dtype=complex)
    local.sum_duplicates()
    local.sort_indices()
    return local


_OPTIONS_PREFIX = "anderson_mpi_"


def _mumps_options(Nx, n_perp):
    """MUMPS controls for a sample of ``Nx`` slices of ``n_perp`` sites.

    ICNTL(7) is the fill-reducing ordering. Debian's MUMPS has no METIS/SCOTCH, only AMD,
    AMF, QAMD and PORD. PORD (4) has the least fill on cubes: N = 16: 1.14e6 factor entries
    (AMD 1.20e6; AMF 2.17e6, which MUMPS's automatic choice takes up to N ~ 16); N = 24: 6.8e6
    (AMD 8.6e6). But PORD calls exit() ("no valid number of stages in multisector") when the
    graph is a clique, i.e. one slice (made dense by the self-energies) or two sites; that
    would kill the whole MPI job, so those tiny cases use AMD (0).
    """
    clique = Nx == 1 or Nx * n_perp <= 2
    return {"mat_mumps_icntl_7": "0" if clique else "4"}


class _Factorization:
    """``A = E - H - Sigma_L - Sigma_R`` of one sample, distributed over ``comm`` and factored.

    Owns PETSc objects whose destruction is collective (MUMPS frees its instance with a
    collective call), so they are destroyed explicitly by :meth:`destroy`, in the same order on
    every rank, never left to the garbage collector.
    """

    def __init__(self, V, modes, hopping, comm, bounds):
        PETSc = load_petsc()
        self.PETSc = PETSc
        self.comm = comm
        Nx, Ny, Nz = V.shape
        self.n_perp = n_perp = Ny * Nz
        self.first, self.last = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
        self.n_local = (self.last - self.first) * n_perp
        self.n_global = Nx * n_perp
        self.modes = modes
        sigma = -hopping[0] * modes.surface_ratio   # Sigma = -tx U diag(mu) U^+
        rows = _local_rows(V, modes.energy, hopping, sigma, self.first, self.last)
        int_type = PETSc.IntType
        self.A = self.ksp = self.pc = self.F = None
        try:
            # Passing the CSR arrays at creation preallocates exactly (MatMPIAIJSetPreallocationCSR)
            # and inserts the values in one call: no mallocs during assembly.
            self.A = PETSc.Mat().createAIJ(
                size=((self.n_local, self.n_global), (self.n_local, self.n_global)),
                csr=(rows.indptr.astype(int_type), rows.indices.astype(int_type), rows.data),
                comm=comm)
            self.A.assemble()
            del rows
            self.ksp = PETSc.KSP().create(comm=comm)
            self.ksp.setOptionsPrefix(_OPTIONS_PREFIX)
            self.ksp.setOperators(self.A)
            self.ksp.setType("preonly")
            self.pc = self.ksp.getPC()
            self.pc.setType("lu")
            self.pc.setFactorSolverType("mumps")
            self._factor_with_mumps_options(PETSc, _mumps_options(Nx, n_perp))
            self.F = self.pc.getFactorMatrix()
            info = self.F.getMumpsInfog(1)          # global: the same on every rank
            if info < 0:
                raise np.linalg.LinAlgError(f"MUMPS factorization failed: INFOG(1)={info}, "
                                            f"INFOG(2)={self.F.getMumpsInfog(2)}")
        except BaseException:
            self.destroy()
            raise

    def _factor_with_mumps_options(self, PETSc, controls):
        """Analysis + numeric factorization with this module's MUMPS controls.

        The controls go through the options database under this module's own prefix, set
        just for the call: in PETSc 3.18 a ``setMumpsIcntl`` before the factorization is
        overwritten when PETSc initialises the MUMPS instance (checked: INFOG(7) ignored it).
        Options the user set under the same prefix win.
        """
        options = PETSc.Options()
        added = [key for key in controls if not options.hasName(_OPTIONS_PREFIX + key)]
        for key in added:
            options.setValue(_OPTIONS_PREFIX + key, controls[key])
        try:
            self.ksp.setUp()
        finally:
            for key in added:
                options.delValue(_OPTIONS_PREFIX + key)

    def mumps_memory_mb(self):
        """``(this rank, max over ranks, sum over ranks)`` of MUMPS's factorization memory, MB.

        MUMPS INFO(22) / INFOG(21) / INFOG(22): memory effectively used by the factorization.
        """
        return self.F.getMumpsInfo(22), self.F.getMumpsInfog(21), self.F.getMumpsInfog(22)

    def solve_surface(self, blocks, out):
        """Solve ``A X = B`` for right-hand sides living on surface slices.

        ``B`` is sparse (``N_perp`` nonzero rows per block), so it is handed to MUMPS as a
        sparse right-hand side: no dense ``n x m`` array for ``B`` on any rank, and MUMPS skips
        the zero rows in the forward substitution (N = 20: 1.3 s instead of 2.0 s per lead,
        same result to the last bit). petsc4py 3.18 has no ``KSP.matSolve``; this is
        ``MatMatSolve`` on the MUMPS factor, which takes a sparse ``B`` as the transpose
        (``MATTRANSPOSEVIRTUAL``) of an AIJ matrix ``Bt`` in compressed rows (= MUMPS's
        compressed columns of ``B``). PETSc 3.18 gives MUMPS only the diagonal block of ``Bt`` on
        the host (rank 0), so rank 0 owns all rows and all columns of ``Bt`` (checked: with
        the columns distributed like ``A``'s, the other ranks' entries are silently dropped).

        Parameters
        ----------
        blocks : list of (int, ndarray (N_perp, m_i))
            ``(slice, block)``: the columns of ``B`` restricted to that slice (zero elsewhere);
            the columns of all blocks are concatenated.
        out : ndarray (last - first, N_perp, sum m_i), complex
            Receives this rank's slices of ``X`` (may be a strided view).
        """
        PETSc = self.PETSc
        n_rhs = sum(block.shape[1] for _, block in blocks)
        host = self.comm.rank == 0
        if host:
            rows, cols, vals = [], [], []
            column = 0
            for surface, block in blocks:
                width = block.shape[1]
                sites = surface * self.n_perp + np.arange(self.n_perp)
                rows.append(np.repeat(column + np.arange(width), self.n_perp))
                cols.append(np.tile(sites, width))
                vals.append(block.T.ravel())
                column += width
            bt = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(n_rhs, self.n_global), dtype=complex)
            bt.sort_indices()
        else:
            bt = sp.csr_matrix((0, self.n_global), dtype=complex)
        int_type = PETSc.IntType
        Bt = B = X = None
        try:
            Bt = PETSc.Mat().createAIJ(
                size=((n_rhs if host else 0, n_rhs), (self.n_global if host else 0, self.n_global)),
                csr=(bt.indptr.astype(int_type), bt.indices.astype(int_type), bt.data),
                comm=self.comm)
            Bt.assemble()
            B = PETSc.Mat().createTranspose(Bt)
            X = PETSc.Mat().createDense(size=((self.n_local, self.n_global), (None, n_rhs)),
                                        comm=self.comm)
            X.setUp()
            X.assemble()
            self.F.matSolve(B, X)
            info = self.F.getMumpsInfog(1)
            if info < 0:
                raise np.linalg.LinAlgError(f"MUMPS solve failed: INFOG(1)={info}")
            # PETSc's (n_local, m) column-major array viewed slice-major: one copy, into out.
            out[...] = X.getDenseArray().reshape(out.shape)
        finally:
            for mat in (X, B, Bt):
                if mat is not None:
                    mat.destroy()

    def destroy(self):
        """Free the factorization (collective over ``comm``).

        Every wrapper is destroyed explicitly, borrowed ones (``F``, ``pc``) first: that only
        drops our reference while the KSP still holds them, then ``ksp.destroy()`` frees PC,
        factor and MUMPS instance together on all ranks. Left to the garbage collector, petsc4py
        3.18 would put a parallel object whose last reference goes into PETSc's delayed-destroy
        "garbage" on the communicator, keeping the MUMPS factors alive (a leak per sample), and
        its exit-time ``garbage_cleanup`` on ``PETSC_COMM_WORLD`` is collective: a rank that
        disagrees about what is left there hangs the whole job in ``MPI_Comm_dup`` at exit.
        """
        for name in ("F", "pc", "ksp", "A"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.destroy()
                setattr(self, name, None)


def _surface_rhs(modes):
    """``i U_open diag(sqrt v)``: the Fisher-Lee right-hand side of the unit-current incomers
    (one column per open mode; nothing comes in through an evanescent one)."""
    return 1j * modes.U[:, modes.open_modes] * np.sqrt(modes.velocity)


def _allgather_slices_inplace(comm, full, bounds):
    """Complete ``full`` (all slices) on every rank from the slices each rank owns.

    Each rank has already written its own slices ``full[bounds[r]:bounds[r + 1]]`` (the solve
    writes straight into the final array); the gather is in place, so no rank holds a second
    copy of its part. A contiguous datatype of one slice keeps the counts small (slices, not
    elements): large samples do not overflow MPI's int counts.
    """
    if comm.size == 1:
        return full
    from mpi4py import MPI
    per_slice = int(np.prod(full.shape[1:]))
    if per_slice == 0:
        return full
    slice_type = MPI.C_DOUBLE_COMPLEX.Create_contiguous(per_slice).Commit()
    try:
        counts = np.diff(bounds).astype(int).tolist()
        displs = bounds[:-1].astype(int).tolist()
        comm.Allgatherv(MPI.IN_PLACE, [full, (counts, displs), slice_type])
    finally:
        slice_type.Free()
    return full


@dataclass
class LocalSolution:
    """This rank's share of a distributed solve (before any gather).

    Attributes
    ----------
    psi : ndarray (last - first, N_perp, m), complex
        The owned slices of the requested states, columns as requested.
    first, last : int
        Owned slice range ``first .. last - 1``.
    bounds : ndarray of int
        Slice bounds of all ranks (see `slice_partition`).
    mumps_mb : list of tuple
        ``(this rank, max, sum)`` MUMPS factorization memory in MB, one per factorization.
    """

    psi: np.ndarray
    first: int
    last: int
    bounds: np.ndarray
    mumps_mb: list


def local_surface_solve(V, requests, setup, comm=None, out=None):
    """Distributed scattering states, kept distributed: each rank returns its own slices.

    This is the memory-scalable core of the solver (the public functions gather its result on
    every rank). Inputs must already be validated.

    Parameters
    ----------
    V : ndarray (Nx, Ny, Nz), float
    requests : list of (str, float)
        ``(lead, energy)`` pairs, energies among the setup's; the result's columns are the
        ``n_open`` incoming (open) modes of each request at its energy, in order. Consecutive
        requests at the same energy share one factorization and one multi-RHS solve.
    setup : anderson_mpi.system.ScatteringSetup
    comm : mpi4py communicator, optional
        Collective over ``comm``; ``None`` means ``MPI.COMM_WORLD``.
    out : ndarray (last - first, N_perp, sum of the requests' n_open), complex, optional
        Where to write this rank's slices (e.g. its rows of the full array to be gathered);
        C-contiguous. Allocated if not given.

    Returns
    -------
    LocalSolution
        ``psi`` is ``out`` when given.
    """
    comm = _world(comm)
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    bounds = slice_partition(Nx, comm.size)
    first, last = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
    shape = (last - first, n_perp, _n_columns(requests, setup))
    if out is None:
        out = np.empty(shape, dtype=complex)
    elif out.shape != shape or out.dtype != complex or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous complex array of shape {shape}")
    psi = out
    mumps_mb = []
    i = column = 0
    while i < len(requests):
        energy = requests[i][1]
        group = [requests[i][0]]
        while i + len(group) < len(requests) and requests[i + len(group)][1] == energy:
            group.append(requests[i + len(group)][0])
        factor = _Factorization(V, setup.lead_at(energy), setup.hopping, comm, bounds)
        try:
            rhs = _surface_rhs(factor.modes)
            blocks = [(Nx - 1 if lead == "R" else 0, rhs) for lead in group]
            width = len(group) * rhs.shape[1]
            factor.solve_surface(blocks, out=psi[:, :, column:column + width])
            column += width
            mumps_mb.append(factor.mumps_memory_mb())
        finally:
            # One factorization alive at a time: the E+ and E- factors never coexist.
            factor.destroy()
        i += len(group)
    return LocalSolution(psi=psi, first=first, last=last, bounds=bounds, mumps_mb=mumps_mb)


def _n_columns(requests, setup):
    """Columns of the solution of ``requests``: the open modes of each request's energy."""
    return sum(setup.lead_at(energy).n_open for _, energy in requests)


def _solve_and_gather(V, requests, setup, comm):
    """`local_surface_solve` written into the full array, then gathered in place on all ranks."""
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    bounds = slice_partition(Nx, comm.size)
    full = np.empty((Nx, n_perp, _n_columns(requests, setup)), dtype=complex)
    local_surface_solve(V, requests, setup, comm,
                        out=full[bounds[comm.rank]:bounds[comm.rank + 1]])
    return _allgather_slices_inplace(comm, full, bounds)


def _amplitudes(psi, lead, modes):
    """Transmission and reflection of the gathered states ``psi`` incoming from ``lead``."""
    sqrt_v = np.sqrt(modes.velocity)[:, None]
    incoming, outgoing = (psi[-1], psi[0]) if lead == "R" else (psi[0], psi[-1])
    # the open rows of U^+ Psi: the evanescent parts carry nothing out
    u_open_h = modes.U[:, modes.open_modes].conj().T
    transmission = sqrt_v * (u_open_h @ outgoing)
    # incoming side: Psi = U (a + b) with a = 1/sqrt(v) on the open rows, r = diag(sqrt v) b
    reflection = sqrt_v * (u_open_h @ incoming) - np.eye(len(sqrt_v))
    return transmission, reflection


def solve_states(V, setup, energy, lead, comm=None):
    """`ScatteringStates` of a validated ``V`` at one of the setup's energies (collective)."""
    comm = _world(comm)
    _check_same_everywhere(comm, V, V.shape, float(energy), lead, setup.hopping)
    psi = _solve_and_gather(V, [(lead, energy)], setup, comm)
    transmission, reflection = _amplitudes(psi, lead, setup.lead_at(energy))
    return ScatteringStates(psi=psi, transmission=transmission, reflection=reflection,
                            lead=lead, energy=float(energy))


def solve_mode_matrices(V, setup, comm=None):
    """Stacked mode matrices of a validated ``V`` by the distributed solver (collective).

    Same result type and layout as `anderson_mpi.engines.transfer.solve_mode_matrices`: right
    incomers at E+, left incomers at E-. Two factorizations (one per energy; one only if the
    energies are equal, then both leads are solved against it at once).
    """
    comm = _world(comm)
    _check_same_everywhere(comm, V, V.shape, setup.e_plus, setup.e_minus, setup.hopping)
    phi = _solve_and_gather(V, [("R", setup.e_plus), ("L", setup.e_minus)], setup, comm)
    n_plus = setup.lead_plus.n_open
    t_r, r_r = _amplitudes(phi[:, :, :n_plus], "R", setup.lead_plus)
    t_l, r_l = _amplitudes(phi[:, :, n_plus:], "L", setup.lead_minus)
    return ModeMatrices(phi=phi, signature=setup.signature, transmission_right=t_r,
                        reflection_right=r_r,
                        unitarity_error=max(flux_error(t_r, r_r), flux_error(t_l, r_l)))


def petsc_scattering_states(V, energy, lead, hopping=DEFAULT_HOPPING, comm=None):
    """Scattering states of sample ``V`` by a distributed sparse direct solve (PETSc/MUMPS).

    Same result as `anderson_mpi.engines.transfer.scattering_states`, computed by factoring
    ``E - H - Sigma_L - Sigma_R`` over the ranks of ``comm`` (Fisher-Lee, module docstring).

    Parameters
    ----------
    V : array_like (Nx, Ny, Nz), float
        On-site potential; the same on every rank of ``comm``.
    energy : float
        Any energy with an open lead channel and none at a band edge (evanescent channels
        are included in the self-energy).
    lead : {"L", "R"}
        The lead the states come in from.
    hopping : (tx, ty, tz)
    comm : mpi4py communicator, optional
        The ranks that share the sample (collective). ``None`` means ``MPI.COMM_WORLD``.

    Returns
    -------
    ScatteringStates
        ``psi`` (Nx, N_perp, n_open), unit incoming current, gathered on every rank of
        ``comm``; ``transmission``, ``reflection`` (n_open x n_open) as for the transfer matrix.

    Raises
    ------
    ValueError
        Bad ``V``, ``hopping`` or ``lead``, a band edge or no open channel, or inputs that
        differ between the ranks of ``comm``.
    numpy.linalg.LinAlgError
        If MUMPS fails (e.g. a singular matrix).
    """
    V = check_potential(V)
    if lead not in ("L", "R"):
        raise ValueError(f"lead must be 'L' or 'R', got {lead!r}")
    setup = ScatteringSetup.build(V.shape, hopping, energy, energy)
    return solve_states(V, setup, setup.e_plus, lead, comm)


def petsc_mode_matrices(V, hopping=DEFAULT_HOPPING, e_plus=E_PLUS, e_minus=E_MINUS, comm=None):
    """Stacked mode matrices ``Phi_a`` of ``V`` by the distributed solver (PETSc/MUMPS).

    Same layout as `anderson_mpi.engines.transfer.mode_matrices` (`solve_mode_matrices` with a setup
    built from the plain arguments).

    Parameters
    ----------
    V : array_like (Nx, Ny, Nz), float
        The same on every rank of ``comm``.
    hopping : (tx, ty, tz)
    e_plus, e_minus : float
    comm : mpi4py communicator, optional
        Collective; ``None`` means ``MPI.COMM_WORLD``.

    Returns
    -------
    ModeMatrices
        ``phi`` (Nx, N_perp, n_open(E+) + n_open(E-)) gathered on every rank of ``comm``.

    Raises
    ------
    ValueError
        Bad inputs, a band edge or no open channel, or inputs differing between ranks.
    numpy.linalg.LinAlgError
        If MUMPS fails.
    """
    V = check_potential(V)
    return solve_mode_matrices(V, ScatteringSetup.build(V.shape, hopping, e_plus, e_minus), comm)
