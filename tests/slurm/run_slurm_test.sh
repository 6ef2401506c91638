#!/usr/bin/env bash
# make slurm-test: the tiny workflow (config/test.yaml, target results/summary.json) through the
# SLURM profile on a single-node test cluster, with two faults, compared with a local run.
#   1. bring up SLURM (profiles/slurm/testbed/up.sh);
#   2. the local reference: the finished run in $CRBNN_SLURM_LOCAL_DIR (e.g. CI's end-to-end run of
#      config/test.yaml) or, without it, a local `--cores 2` run;
#   3. the SLURM run: --workflow-profile "$REPO/profiles/slurm" --profile "$REPO/profiles/slurm-site-example", with
#      compute.device auto and compute.gpus 1 so that every GPU-capable job asks for a GPU; while it
#      runs, one job is cancelled with scancel and slurmd is killed (SIGKILL) and restarted;
#   4. checks (tests/slurm/check_slurm_run.py): equal summary numbers, every GPU job in the gpu
#      partition (sacct), the cancelled job retried, its SLURM log kept;
#   5. tear down (always; KEEP_SLURM=1 keeps the cluster up).
# Needs root and apt-get (Debian 12) or the packages installed.  Inputs: CRBNN_DATA_DIR.
# Every wait is bounded; snakemake runs under `timeout -s KILL` (it ignores SIGTERM when it hangs).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$REPO"
PY="$REPO/.venv/bin/python"
SMK=("$REPO/.venv/bin/snakemake" --snakefile "$REPO/Snakefile")
TESTBED="$REPO/profiles/slurm/testbed"
WORK="${CRBNN_SLURM_WORK:-}"
OWN_WORK=0
[[ -n "$WORK" ]] || { WORK="$(mktemp -d /var/tmp/crbnn-slurm-test.XXXXXX)"; OWN_WORK=1; }
RUN_TIMEOUT="${CRBNN_SLURM_RUN_TIMEOUT:-1500}"   # s, the SLURM run
LOCAL_TIMEOUT="${CRBNN_SLURM_LOCAL_TIMEOUT:-1500}"
TARGET=results/summary.json
STATE="${CRBNN_SLURM_STATE:-/var/tmp/crbnn-slurm}"
: "${CRBNN_DATA_DIR:?set CRBNN_DATA_DIR to the folder with the public inputs}"

say() { echo "slurm-test: $*"; }
t_start=$SECONDS
cleanup() {
    [[ -n "${FAULTS_PID:-}" ]] && kill "$FAULTS_PID" 2>/dev/null || true
    if [[ "${KEEP_SLURM:-0}" != 1 ]]; then bash "$TESTBED/down.sh" || true; fi
}
trap cleanup EXIT

mkdir -p "$WORK"
say "work folder $WORK"
t0=$SECONDS
bash "$TESTBED/up.sh"
say "bring-up: $(( SECONDS - t0 )) s"

# ---------------------------------------------------------------------------- local reference
inputs_overlay() { printf "inputs:\n  data_dir: '%s'\n" "$CRBNN_DATA_DIR" >"$1"; }
if [[ -n "${CRBNN_SLURM_LOCAL_DIR:-}" && -s "$CRBNN_SLURM_LOCAL_DIR/$TARGET" ]]; then
    LOCAL="$CRBNN_SLURM_LOCAL_DIR"
    say "local reference: $LOCAL/$TARGET (existing run)"
else
    LOCAL="$WORK/local"
    mkdir -p "$LOCAL"
    inputs_overlay "$LOCAL/overlay.yaml"
    t0=$SECONDS
    timeout -s KILL "$LOCAL_TIMEOUT" "${SMK[@]}" --directory "$LOCAL" --cores 2 \
        --configfile config/test.yaml "$LOCAL/overlay.yaml" -- "$TARGET" >"$WORK/local.log" 2>&1 \
        || { tail -50 "$WORK/local.log"; say "FAILED: local run (log $WORK/local.log)"; exit 1; }
    say "local run (--cores 2): $(( SECONDS - t0 )) s"
fi

# ---------------------------------------------------------------------------- SLURM run + faults
RUN="$WORK/slurm"
mkdir -p "$RUN"
inputs_overlay "$RUN/overlay.yaml"
printf "compute:\n  device: auto\n  gpus: 1\n" >>"$RUN/overlay.yaml"

# faults: cancel the first running train_network job; then, once another job runs, kill slurmd
# and restart it 5 s later.  Each wait is bounded (the run's own timeout bounds this too).
faults() {
    local deadline=$(( SECONDS + RUN_TIMEOUT )) id
    until id="$(squeue -h -t R -o '%i %k' | awk '$2 ~ /^rule_train_network/ {print $1; exit}')" && [[ -n "$id" ]]; do
        (( SECONDS < deadline )) || return 0
        sleep 1
    done
    sleep 2
    scancel "$id" && echo "$id" >"$WORK/cancelled_jobid" && say "fault 1: scancel $id (train_network)"
    until squeue -h -t R -o '%i' | grep -qv "^$id$"; do
        (( SECONDS < deadline )) || return 0
        sleep 1
    done
    kill -KILL "$(cat "$STATE/slurmd.pid")" && say "fault 2: slurmd killed (SIGKILL) with jobs running"
    sleep 5
    slurmd && say "fault 2: slurmd restarted" && touch "$WORK/slurmd_restarted"
}
faults &
FAULTS_PID=$!

t0=$SECONDS
status=0
timeout -s KILL "$RUN_TIMEOUT" "${SMK[@]}" --directory "$RUN" \
    --workflow-profile "$REPO/profiles/slurm" --profile "$REPO/profiles/slurm-site-example" \
    --slurm-init-seconds-before-status-checks 2 \
    --configfile config/test.yaml "$RUN/overlay.yaml" -- "$TARGET" >"$WORK/slurm.log" 2>&1 || status=$?
t_run=$(( SECONDS - t0 ))
# Faults that have not happened by now will not (the check below then fails).
kill "$FAULTS_PID" 2>/dev/null || true
FAULTS_PID=
if [[ $status -ne 0 ]]; then
    tail -60 "$WORK/slurm.log"
    say "FAILED: SLURM run exit $status after $t_run s (log $WORK/slurm.log; SLURM logs $RUN/.snakemake/slurm_logs)"
    exit 1
fi
say "SLURM run: $t_run s"

# A second invocation must have nothing to do (resume works from the same state).
"${SMK[@]}" --directory "$RUN" --workflow-profile "$REPO/profiles/slurm" --profile "$REPO/profiles/slurm-site-example" \
    -n --configfile config/test.yaml "$RUN/overlay.yaml" -- "$TARGET" >"$WORK/again.log" 2>&1
grep -q "Nothing to be done" "$WORK/again.log" || { cat "$WORK/again.log"; say "FAILED: rerun not empty"; exit 1; }

t0=$SECONDS
"$PY" tests/slurm/check_slurm_run.py --local "$LOCAL" --slurm "$RUN" --snakemake-log "$WORK/slurm.log" \
    --cancelled "$WORK/cancelled_jobid" --slurmd-restarted "$WORK/slurmd_restarted"
say "checks: $(( SECONDS - t0 )) s"
say "PASSED in $(( SECONDS - t_start )) s"
# A passed run's own work folder is removed; a failed one is kept for its logs.
(( OWN_WORK )) && rm -rf "$WORK"
exit 0
