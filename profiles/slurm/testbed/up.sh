#!/usr/bin/env bash
# Bring up a single-node SLURM test cluster on this machine from Debian packages (Debian 12:
# slurm-wlm 22.05, munge, slurmdbd + MariaDB): partitions `cpu` (default; no GPU allowed) and `gpu`
# (four GPU GRES on character devices made with mknod), accounting on, account `crbnn_test` for
# root.  Waits until the node is idle.  Idempotent: a second call finds the daemons up and only
# checks them.  Every wait is bounded.  Tear down with down.sh (same folder).
#
# With accounting (slurmdbd + MariaDB), like the plugin's own CI and most production clusters: the
# overlay's account is enforced (an unknown one is refused), the cpu partition's QOS refuses GPU
# jobs at submission, sacct keeps every job's partition and request for the checks, and the
# plugin's sacct status (its default, and its fallback when MinJobAge is short) works.  The profile
# itself polls with squeue (see profiles/slurm/config.yaml for why).
#
# For testing the SLURM profile (make slurm-test), not for production: no cgroups, the node is
# declared bigger than the machine, SlurmUser is root.
#
# Environment: CRBNN_SLURM_STATE (state folder, default /var/tmp/crbnn-slurm),
# CRBNN_SLURM_INSTALL=no (never apt-get; fail when a package is missing),
# CRBNN_SLURM_DB_PORT (MariaDB port, default 3306), CRBNN_SLURM_TIMEOUT (s per wait, default 60).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${CRBNN_SLURM_STATE:-/var/tmp/crbnn-slurm}"
DBPORT="${CRBNN_SLURM_DB_PORT:-3306}"
TIMEOUT="${CRBNN_SLURM_TIMEOUT:-60}"
ACCOUNT=crbnn_test
HOST="$(hostname -s)"
CPUS=4          # declared (config_overrides): at most 4 single-thread jobs at once on a 2-core CI machine
MEM=300000      # MB declared: room for four of the profile's largest requests (64000 MB) at once
NGPU=4          # declared GPU GRES (fake devices): up to 4 one-GPU jobs at once
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server iproute2)
PORTS=(6817 6818 6819 "$DBPORT")

say() { echo "slurm-testbed: $*"; }
die() { echo "slurm-testbed: ERROR: $*" >&2; exit 1; }

# wait_for <what> <command...>: poll once a second until the command succeeds, at most TIMEOUT s.
wait_for() {
    local what="$1"; shift
    local t0=$SECONDS
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS - t0 >= TIMEOUT )); then
            die "$what not ready after ${TIMEOUT} s (logs: $STATE/log/, $STATE/mysqlrun/mariadb.log)"
        fi
        sleep 1
    done
    say "$what ready ($(( SECONDS - t0 )) s)"
}

# alive <pidfile>: the process of the pid file runs.
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# port_free_or_ours <port> <pidfile>: nothing listens, or our daemon of that pid file does.
check_port() {
    local port="$1" pidfile="$2"
    if ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; then
        alive "$pidfile" && return 0
        local hint="stop it (is another SLURM running here?)"
        [[ "$port" == "$DBPORT" ]] && hint="stop it or choose another port with CRBNN_SLURM_DB_PORT"
        die "port $port is taken by another program $(ss -ltnpH "sport = :$port" | sed 's/.*users://'): $hint"
    fi
}

# ------------------------------------------------------------------------------ preconditions
[[ "$(id -u)" == 0 ]] || die "must run as root (it installs packages, writes /etc/slurm and starts daemons)"
[[ "$(uname -s)" == Linux ]] || die "Linux only"
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    [[ "${CRBNN_SLURM_INSTALL:-yes}" != no ]] || die "packages missing: ${missing[*]} (CRBNN_SLURM_INSTALL=no)"
    command -v apt-get >/dev/null || die "packages missing (${missing[*]}) and no apt-get: Debian/Ubuntu only"
    say "installing ${missing[*]} (apt-get)"
    t0=$SECONDS
    timeout 120 apt-get update -qq || die "apt-get update failed or took > 120 s"
    # The packages' own service starts are refused (this script starts the daemons itself).
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    (( made_policy )) && rm -f /usr/sbin/policy-rc.d
    say "packages installed ($(( SECONDS - t0 )) s)"
fi

command -v ss >/dev/null || die "ss (iproute2) not found"
if [[ -e /etc/slurm/slurm.conf ]] && ! grep -q "crbnn SLURM testbed" /etc/slurm/slurm.conf; then
    die "/etc/slurm/slurm.conf exists and is not the testbed's: this machine has a SLURM of its own"
fi

mkdir -p "$STATE"/{ctld,spool,log,mysql,mysqlrun,dev} /etc/slurm
check_port 6817 "$STATE/slurmctld.pid"
check_port 6818 "$STATE/slurmd.pid"
check_port 6819 "$STATE/slurmdbd.pid"
check_port "$DBPORT" "$STATE/mysqlrun/mysql.pid"

# ------------------------------------------------------------------------------ configuration
# The database password is made once per state folder.
[[ -s "$STATE/dbpass" ]] || (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/dbpass")
DBPASS="$(cat "$STATE/dbpass")"
subst() {
    sed -e "s|@HOST@|$HOST|g" -e "s|@STATE@|$STATE|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM@|$MEM|g" \
        -e "s|@DEVDIR@|$STATE/dev|g" -e "s|@NGPU@|$NGPU|g" -e "s|@LASTGPU@|$(( NGPU - 1 ))|g" -e "s|@DBPORT@|$DBPORT|g" -e "s|@DBPASS@|$DBPASS|g" "$1"
}
subst "$HERE/slurm.conf.in" >/etc/slurm/slurm.conf
subst "$HERE/gres.conf.in" >/etc/slurm/gres.conf
(umask 077; subst "$HERE/slurmdbd.conf.in" >/etc/slurm/slurmdbd.conf)
chmod 600 /etc/slurm/slurmdbd.conf
# A GRES File= must be a character device; a plain file is refused and none drains the node.
for (( i = 0; i < NGPU; i++ )); do
    [[ -c "$STATE/dev/nvidia$i" ]] || mknod "$STATE/dev/nvidia$i" c 1 3 \
        || die "mknod $STATE/dev/nvidia$i failed (a container without CAP_MKNOD?): the GPU GRES needs a character device"
done

# ------------------------------------------------------------------------------ munge
if ! alive /run/munge/munged.pid; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 600 /etc/munge/munge.key
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
fi
wait_for munge sh -c "munge -n | unmunge"

# ------------------------------------------------------------------------------ MariaDB
# Its socket, pid file and log in mysqlrun/ (written by user mysql).
SOCK="$STATE/mysqlrun/mysql.sock"
if ! alive "$STATE/mysqlrun/mysql.pid"; then
    chown -R mysql:mysql "$STATE/mysql" "$STATE/mysqlrun"
    if [[ ! -d "$STATE/mysql/mysql" ]]; then
        mariadb-install-db --user=mysql --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
            >"$STATE/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed ($STATE/log/mariadb-install.log)"
    fi
    setsid mariadbd --user=mysql --datadir="$STATE/mysql" --bind-address=127.0.0.1 --port="$DBPORT" \
        --socket="$SOCK" --pid-file="$STATE/mysqlrun/mysql.pid" --skip-name-resolve --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
        --log-error="$STATE/mysqlrun/mariadb.log" </dev/null >/dev/null 2>&1 &
fi
wait_for MariaDB mariadb --socket="$SOCK" -e "select 1"
mariadb --socket="$SOCK" <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
GRANT ALL ON crbnn_slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

# ------------------------------------------------------------------------------ slurmdbd
alive "$STATE/slurmdbd.pid" || slurmdbd
wait_for slurmdbd sacctmgr -n list cluster

# Cluster, account, user and the cpu partition's QOS (no GPU: a GPU job there is refused at
# submission, DenyOnLimit).  `sacctmgr -i add` of an existing entity fails harmlessly.
sacctmgr -i add cluster crbnn >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" cluster=crbnn description="crbnn testbed" organization=crbnn >/dev/null 2>&1 || true
sacctmgr -i add user root account="$ACCOUNT" cluster=crbnn >/dev/null 2>&1 || true
sacctmgr -i add qos cpu_only >/dev/null 2>&1 || true
sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=account | grep -qx "$ACCOUNT" \
    || die "account $ACCOUNT for root not created (sacctmgr)"

# ------------------------------------------------------------------------------ slurmctld, slurmd
if ! alive "$STATE/slurmctld.pid"; then
    slurmctld
fi
wait_for slurmctld scontrol ping
# gres/gpu is a TRES once slurmctld has registered it with slurmdbd.
wait_for "TRES gres/gpu" sh -c "sacctmgr -n -P list tres format=type,name | grep -qx 'gres|gpu'"
sacctmgr -i modify qos cpu_only set MaxTRESPerJob=gres/gpu=0 Flags=DenyOnLimit >/dev/null
alive "$STATE/slurmd.pid" || slurmd
node_idle() { sinfo -h -N -n "$HOST" -o '%t' | grep -Eq '^(idle|mix|alloc)$'; }
wait_for "node $HOST (idle)" node_idle
sinfo -o '%P %a %D %t %c %m %G'
say "up: state in $STATE, logs in $STATE/log, account $ACCOUNT; tear down with $HERE/down.sh"
