#!/usr/bin/env bash
# Tear down the single-node SLURM of up.sh: stop slurmd, slurmctld, slurmdbd, MariaDB and munged
# (each by its pid file, TERM then KILL after 20 s) and remove the testbed's /etc/slurm files.
# --purge also removes the state folder (job state, accounting database, logs).  Idempotent.
set -euo pipefail
STATE="${CRBNN_SLURM_STATE:-/var/tmp/crbnn-slurm}"
say() { echo "slurm-testbed: $*"; }
[[ "$(id -u)" == 0 ]] || { echo "slurm-testbed: ERROR: must run as root" >&2; exit 1; }

stop() {  # stop <name> <pidfile>
    local name="$1" pidfile="$2" pid
    [[ -s "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name (pid $pid) did not stop in 20 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "$name stopped"
    fi
    rm -f "$pidfile"
}

# Jobs first, so that no slurmstepd outlives its daemons.
if command -v scancel >/dev/null && [[ -s "$STATE/slurmctld.pid" ]]; then
    timeout 10 scancel --user=root >/dev/null 2>&1 || true
fi
stop slurmd "$STATE/slurmd.pid"
stop slurmctld "$STATE/slurmctld.pid"
stop slurmdbd "$STATE/slurmdbd.pid"
stop MariaDB "$STATE/mysqlrun/mysql.pid"
stop munged /run/munge/munged.pid
for f in slurm.conf gres.conf slurmdbd.conf; do
    if [[ -e "/etc/slurm/$f" ]] && grep -q "crbnn SLURM testbed" "/etc/slurm/$f"; then
        rm -f "/etc/slurm/$f"
    fi
done
if [[ "${1:-}" == --purge ]]; then
    rm -rf "$STATE"
    say "state folder $STATE removed"
fi
say "down"
