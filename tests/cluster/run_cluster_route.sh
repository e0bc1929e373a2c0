#!/usr/bin/env bash
# `make test-cluster-route`: the README's cluster install ("Install with the cluster's modules"), as a
# user without root would follow it. Root is used only to create that user and to remove it again.
#
#  1. creates the unprivileged account $CLUSTER_USER (useradd, no sudo, no capabilities) and gives it
#     a copy of this checkout's tracked files in its home (not root's venv, not root's pip cache);
#  2. as that user, in a clean environment (PATH=/usr/local/bin:/usr/bin:/bin, its own HOME and TMPDIR;
#     proxy and PIP_* settings passed on), the system MPI and parallel HDF5 standing in for
#     `module load`, exactly the README's recipe:
#         export HDF5_DIR=<Debian's parallel HDF5 prefix>
#         make install SKIP_APT=1 WITH_PETSC=0 PYTHON=python3 MPICC=mpicc
#     (a fresh venv from PyPI; h5py compiled with mpicc against that prefix), then `make install`
#     again (must build nothing);
#  3. checks that h5py has MPI and was linked through HDF5_DIR (its RUNPATH holds $HDF5_DIR/lib, which
#     the pkg-config route never gives);
#  4. runs a short real job as that user,
#         mpirun -n 2 .venv/bin/python -m anderson_mpi run jobs/demo.toml --N 6 --samples 40 --out ...
#     then `anderson-mpi info` on its file, and checks from the HDF5 file itself (the user's h5py):
#     /totals/valid = 1, /totals/n_samples = the samples asked for, every block done;
#  5. removes the account, its home and every file it left in /tmp, /var/tmp and /dev/shm, also on
#     failure or Ctrl-C. The step logs stay in /tmp/anderson-cluster-route.* on failure (KEEP=1: also
#     on success).
#
# Idempotent: an account of that name left by an earlier, interrupted run (recognised by its comment
# field) is removed first; an account of that name that this script did not create stops it, and so
# does a run of this script in progress (a lock).
# Needs root, and the system packages of `make install` (run as root first; CI does).
# Variables: CLUSTER_USER (default anderson-cluster), HDF5_DIR (default Debian's openmpi prefix,
# /usr/lib/<multiarch>/hdf5/openmpi), SAMPLES (40), KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
CLUSTER_USER=${CLUSTER_USER:-anderson-cluster}
MARK="anderson_mpi cluster-route test account (tests/cluster/run_cluster_route.sh)"
SAMPLES=${SAMPLES:-40}
RANKS=2
T0=$SECONDS
SUMMARY=()
CHILD=""
WORK=""
OWN_ACCOUNT=0   # 1 once the account is ours to remove
say() { echo "[cluster-route $(date +%T) +$((SECONDS - T0))s] $*"; }
note() { SUMMARY+=("$(printf '%-44s %s' "$1" "$2")"); }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (to create and remove the test account); run: sudo make test-cluster-route"
for tool in useradd userdel setpriv flock git tar readelf mpicc mpirun make; do
  command -v "$tool" >/dev/null || die "'$tool' not found; run 'make install' as root first (installs Open MPI, parallel HDF5, python3-venv)"
done
if [ -z "${HDF5_DIR:-}" ]; then
  HDF5_DIR=$(ls -d /usr/lib/*/hdf5/openmpi 2>/dev/null | head -n 1 || true)
fi
[ -n "$HDF5_DIR" ] && grep -qs "define H5_HAVE_PARALLEL 1" "$HDF5_DIR"/include/H5pubconf*.h \
  && ls "$HDF5_DIR"/lib/libhdf5.so >/dev/null 2>&1 \
  || die "no parallel HDF5 prefix (include/H5pubconf.h with H5_HAVE_PARALLEL, lib/libhdf5.so) at HDF5_DIR='$HDF5_DIR'; run 'make install' as root first (libhdf5-openmpi-dev)"
/usr/bin/python3 -c "import ensurepip, sysconfig, os; assert os.path.exists(sysconfig.get_paths()['include'] + '/Python.h')" 2>/dev/null \
  || die "/usr/bin/python3 lacks venv or its headers; run 'make install' as root first (python3-venv, python3-dev)"

# --- the account --------------------------------------------------------------------------------

account_pids() {   # PIDs of the processes running as uid $1 (from /proc: no procps needed)
  local d
  for d in /proc/[0-9]*; do [ "$(stat -c %u "$d" 2>/dev/null)" = "$1" ] && echo "${d#/proc/}"; done; true
}

remove_account() {
  local uid pids p
  uid=$(id -u "$CLUSTER_USER" 2>/dev/null) || return 0
  [ "$(getent passwd "$CLUSTER_USER" | cut -d: -f5)" = "$MARK" ] || return 0   # never someone else's
  # Everything still running under the throwaway account was started by this script: stop it by PID.
  pids=$(account_pids "$uid" | xargs)
  if [ -n "$pids" ]; then
    say "stopping the account's processes: $pids"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 2
    for p in $(account_pids "$uid"); do kill -KILL "$p" 2>/dev/null || true; done
    sleep 1
  fi
  find /tmp /var/tmp /dev/shm -xdev -mindepth 1 -maxdepth 1 -user "$uid" -exec rm -rf {} + 2>/dev/null || true
  userdel -r "$CLUSTER_USER" 2>/dev/null || userdel "$CLUSTER_USER"
  # userdel -r leaves a home it does not recognise; ours holds the marker file
  local home=/home/$CLUSTER_USER
  [ -f "$home/.anderson-cluster-route" ] && rm -rf "$home"
  getent group "$CLUSTER_USER" >/dev/null && groupdel "$CLUSTER_USER" 2>/dev/null || true
  ! id "$CLUSTER_USER" >/dev/null 2>&1
}

finish() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
    say "stopping the running step (pid $CHILD)"; kill -TERM "$CHILD"; wait "$CHILD" 2>/dev/null
  fi
  local tc=$SECONDS
  if [ "$OWN_ACCOUNT" != 1 ]; then :
  elif remove_account; then note "account and its files removed" "$((SECONDS - tc)) s"
  else note "account removal" "FAILED (userdel $CLUSTER_USER)"; rc=1; fi
  echo
  echo "================ cluster-route summary ================"
  [ ${#SUMMARY[@]} -gt 0 ] && printf '%s\n' "${SUMMARY[@]}"
  printf '%-44s %s\n' "total" "$((SECONDS - T0)) s"
  if [ "$rc" != 0 ]; then
    if [ -n "$WORK" ] && ! rmdir "$WORK" 2>/dev/null; then printf '%-44s %s\n' "step logs" "$WORK (kept)"; fi
    echo "FAILED (status $rc)"
  else
    if [ "${KEEP:-0}" = 1 ]; then printf '%-44s %s\n' "step logs" "$WORK (kept: KEEP=1)"
    else rm -rf "$WORK"; fi
    echo "PASSED"
  fi
  exit "$rc"
}
# One run at a time: a second run would take the first one's account away.
exec 9>"$( [ -d /run/lock ] && echo /run/lock || echo /tmp )/anderson-cluster-route.lock"
flock -n 9 || die "another run of this script is in progress (it holds the account $CLUSTER_USER)"

trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d /tmp/anderson-cluster-route.XXXXXX)
if id "$CLUSTER_USER" >/dev/null 2>&1; then
  [ "$(getent passwd "$CLUSTER_USER" | cut -d: -f5)" = "$MARK" ] \
    || die "an account '$CLUSTER_USER' exists and was not made by this script; set CLUSTER_USER to another name"
  say "removing the account left by an earlier run"
  OWN_ACCOUNT=1
  remove_account || die "could not remove the earlier account $CLUSTER_USER"
elif [ -e "/home/$CLUSTER_USER" ]; then
  [ -f "/home/$CLUSTER_USER/.anderson-cluster-route" ] \
    || die "/home/$CLUSTER_USER exists and was not made by this script; set CLUSTER_USER to another name"
  rm -rf "/home/$CLUSTER_USER"
fi

OWN_ACCOUNT=1
useradd --create-home --home-dir "/home/$CLUSTER_USER" --shell /bin/bash --comment "$MARK" --user-group "$CLUSTER_USER"
U_UID=$(id -u "$CLUSTER_USER")
U_GID=$(id -g "$CLUSTER_USER")
U_HOME=/home/$CLUSTER_USER
say "account $CLUSTER_USER (uid $U_UID, groups: $(id -Gn "$CLUSTER_USER"))"
[ "$U_UID" != 0 ] || die "the test account got uid 0"

# Run a command as the account, in a clean environment, stdin passed on; its output goes to $WORK/$1.log
# and, as it comes, to the terminal. The step's PID is kept in CHILD so that the exit trap can stop it.
PASS_ENV=()
for v in $(compgen -e); do
  case $v in http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY|PIP_*) PASS_ENV+=("$v=${!v}");; esac
done
as_user() {
  local log=$WORK/$1.log rc=0 tail_pid
  : > "$log"
  setpriv --reuid="$U_UID" --regid="$U_GID" --init-groups \
    env -i HOME="$U_HOME" USER="$CLUSTER_USER" LOGNAME="$CLUSTER_USER" SHELL=/bin/bash \
        PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TMPDIR="${U_TMP:-/tmp}" "${PASS_ENV[@]}" \
        bash -c "$2" <&0 >"$log" 2>&1 9>&- &
  CHILD=$!
  tail -n +1 -s 0.2 -f --pid="$CHILD" "$log" &
  tail_pid=$!
  wait "$CHILD" || rc=$?
  wait "$tail_pid" 2>/dev/null || true
  CHILD=""
  return "$rc"
}

as_user whoami 'set -e; echo "uid=$(id -u) user=$(id -un) groups=$(id -Gn)"; grep CapEff /proc/self/status
  [ "$(id -u)" != 0 ] && grep -q "^CapEff:[[:space:]]*0*$" /proc/self/status
  ! { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }
  ! touch /etc/anderson-cluster-route-probe 2>/dev/null
  mkdir "$HOME/anderson_mpi" && touch "$HOME/.anderson-cluster-route"' \
  || die "the test account is not an unprivileged user (see $WORK/whoami.log)"
U_TMP=$(as_user mktemp 'mktemp -d /tmp/anderson-cluster.XXXXXX' | tail -n 1)
[ -d "$U_TMP" ] && [ "$(stat -c %u "$U_TMP")" = "$U_UID" ] || die "could not make the account's own TMPDIR"

# The checkout's tracked files as they are on disk (committed or not), written by the account itself.
if files=$(git -C "$ROOT" ls-files -z 2>/dev/null | tr '\0' '\n') && [ -n "$files" ]; then
  (cd "$ROOT" && git ls-files -z | tar --null -T - -cf -) | as_user copy 'tar -C "$HOME/anderson_mpi" -xf -' \
    || die "could not copy the checkout into $U_HOME/anderson_mpi"
else
  die "$ROOT is not a git checkout (git ls-files found nothing); the copy takes the tracked files"
fi
note "account $CLUSTER_USER (uid $U_UID)" "unprivileged: uid != 0, CapEff 0, no sudo"
note "checkout copied" "$(as_user count 'cd ~/anderson_mpi && find . -type f | wc -l' | tail -n 1) files into $U_HOME/anderson_mpi"

# --- the README's recipe ------------------------------------------------------------------------

say "make install as $CLUSTER_USER with HDF5_DIR=$HDF5_DIR (fresh venv from PyPI, h5py compiles: ~2-4 min)"
t=$SECONDS
as_user install "set -eo pipefail; cd ~/anderson_mpi
  export HDF5_DIR='$HDF5_DIR'
  make install SKIP_APT=1 WITH_PETSC=0 PYTHON=python3 MPICC=mpicc" \
  || die "make install as $CLUSTER_USER with HDF5_DIR=$HDF5_DIR failed (log: $WORK/install.log)"
note "make install (HDF5_DIR, first)" "$((SECONDS - t)) s"
grep -q "building h5py against parallel HDF5 at HDF5_DIR=$HDF5_DIR" "$WORK/install.log" \
  || die "make install did not build h5py through HDF5_DIR (log: $WORK/install.log)"

t=$SECONDS
as_user install2 "set -eo pipefail; cd ~/anderson_mpi; export HDF5_DIR='$HDF5_DIR'
  make install SKIP_APT=1 WITH_PETSC=0 PYTHON=python3 MPICC=mpicc" \
  || die "the second make install failed (log: $WORK/install2.log)"
note "make install (again: checks only)" "$((SECONDS - t)) s"
! grep -q "install: building" "$WORK/install2.log" || die "the second make install built something again (log: $WORK/install2.log)"

as_user h5py "cd ~/anderson_mpi && .venv/bin/python - '$HDF5_DIR' <<'EOF'
import glob, os, subprocess, sys
import h5py
prefix = sys.argv[1]
assert h5py.get_config().mpi, 'h5py lacks MPI'
assert h5py.__file__.startswith(os.path.expanduser('~')), f'h5py is not the account venv one: {h5py.__file__}'
ext = glob.glob(os.path.join(os.path.dirname(h5py.__file__), 'defs*.so'))[0]
dyn = subprocess.run(['readelf', '-d', ext], capture_output=True, text=True).stdout
runpath = [line.split('[', 1)[1].rstrip(']') for line in dyn.splitlines() if 'RUNPATH' in line or 'RPATH' in line]
print('h5py', h5py.__version__, 'HDF5', h5py.version.hdf5_version, 'mpi=True', 'runpath', runpath)
assert any(os.path.join(prefix, 'lib') in p.split(':') for p in runpath), \\
    f'h5py was not linked through HDF5_DIR={prefix} (RUNPATH {runpath})'
EOF" || die "h5py of the account's venv is not parallel or not built through HDF5_DIR (log: $WORK/h5py.log)"
note "h5py of the account's venv" "$(grep '^h5py' "$WORK/h5py.log" | tail -n 1 | cut -d' ' -f2-)"

# --- a short real job ---------------------------------------------------------------------------

OUT=$U_TMP/results
say "mpirun -n $RANKS as $CLUSTER_USER: jobs/demo.toml --N 6 --samples $SAMPLES --out $OUT"
t=$SECONDS
as_user job "set -eo pipefail; cd ~/anderson_mpi
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
  mpirun -n $RANKS .venv/bin/python -m anderson_mpi run jobs/demo.toml --N 6 --samples $SAMPLES --out '$OUT'
  .venv/bin/anderson-mpi info '$OUT'/*.h5" \
  || die "the job as $CLUSTER_USER failed (log: $WORK/job.log)"
note "job (mpirun -n $RANKS, N=6, $SAMPLES samples) + info" "$((SECONDS - t)) s"

as_user check "cd ~/anderson_mpi && .venv/bin/python - '$OUT' $SAMPLES <<'EOF'
import glob, os, sys
import h5py, numpy as np
out, samples = sys.argv[1], int(sys.argv[2])
files = sorted(glob.glob(os.path.join(out, '*.h5')))
assert [os.path.basename(f) for f in files] == ['cube_N6_W6.h5'], f'expected one result file cube_N6_W6.h5 in {out}, found {files}'
with h5py.File(files[0], 'r') as f:
    assert f['totals/valid'][()] == 1, '/totals/valid is not 1: the run did not complete'
    assert f.attrs['samples'] == samples, f\"file asks for {f.attrs['samples']} samples, the job {samples}\"
    assert f['totals/n_samples'][()] == samples, f\"/totals/n_samples = {f['totals/n_samples'][()]}, not {samples}\"
    done = f['blocks/done'][:]
    assert done.all(), f'blocks not done: {np.flatnonzero(done == 0).tolist()}'
    assert f['blocks/n_samples'][:].sum() == samples
    assert np.isfinite(f['totals/tr_g'][:]).all()
    ranks = sorted(set(f['blocks/rank'][:].tolist()))
    print(f'{os.path.basename(files[0])}: valid=1, samples={samples}, {done.size} blocks done by ranks {ranks}, owner uid {os.stat(files[0]).st_uid}')
EOF" || die "the job's result file does not show a complete run (log: $WORK/check.log)"
note "result file" "$(tail -n 1 "$WORK/check.log")"
say "the cluster route works: unprivileged install with HDF5_DIR, a 2-rank job, a complete result file"
