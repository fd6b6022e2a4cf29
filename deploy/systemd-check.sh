#!/usr/bin/env bash
# Run edge-agent.service under a REAL systemd (PID 1 of its own namespaces) in a throwaway Debian root,
# install the agent there with deploy/install.sh, and check what the unit promises: READY=1 gates
# "active", STATUS= shows in `systemctl status`, the sandbox lets the agent start and work, SIGHUP
# reload, the watchdog kills a stalled process and systemd restarts it, and a clean stop.
#
#   sudo deploy/systemd-check.sh --root /work/sdroot/root [--wheel edge_agent-*.whl] [--out DIR]
#
# Safety (systemd is never started on the host itself):
#   - the root DIR is created with debootstrap (bookworm, minbase) when it has no /etc/debian_version;
#   - systemd runs chrooted into DIR with container=other, in new pid, mount (private), uts, ipc, net
#     and cgroup namespaces; its cgroup tree is a sub-cgroup of the host's cgroup2 hierarchy
#     (/sys/fs/cgroup/unified/edge-agent-sdcheck or /sys/fs/cgroup/edge-agent-sdcheck), removed at the end;
#   - inside DIR: a fresh /proc (with /proc/sys and /proc/sysrq-trigger read-only), sysfs read-only,
#     cgroup2 (the namespace's root only), a tmpfs /dev holding null zero full random urandom tty + a new
#     devpts instance, /dev/console bound to a log file; no host directory is bound into DIR;
#   - the capability bounding set of that systemd lacks sys_module, sys_time, sys_rawio, syslog,
#     audit_*, mac_*, wake_alarm, block_suspend; units that would touch the host kernel or disk (sysctl,
#     modules, binfmt, debugfs/tracefs/configfs/fusectl, fsck, remount-fs, pstore, timesyncd, udev, ...)
#     are masked in DIR;
#   - at the end systemd is powered off (then SIGKILLed if still there): the pid namespace dies with it.
#
# Prints PASS/FAIL per check; the evidence (systemctl status, journal, systemd-analyze security, the
# console) goes to --out (default: DIR/../sdcheck-out). Exit status: 0 when every check passed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(dirname "$SCRIPT_DIR")
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=systemd,python3,python3-venv,mosquitto,procps,ca-certificates,iproute2
UNIT=edge-agent.service
PLC_PORT=1502
WHEELS=/var/cache/edge-agent-sdcheck/wheels  # inside the root
STAGE=/root/sdcheck                           # inside the root: install.sh, unit, wheel, test config
INSIDE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ROOT=""
WHEEL=""
OUT=""
KEEP=0
usage() {
    cat <<EOF
usage: systemd-check.sh --root DIR [--wheel WHEEL] [--out DIR] [--keep-running]

  --root DIR       the throwaway Debian root (created with debootstrap when it is not one yet)
  --wheel WHEEL    edge_agent-*.whl to install (default: built from $SRC_DIR)
  --out DIR        where the evidence goes (default: DIR/../sdcheck-out)
  --keep-running   leave the systemd instance running at the end (prints how to enter and stop it)
EOF
}
while [[ $# -gt 0 ]]; do
    case $1 in
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        --wheel) WHEEL=${2:?--wheel needs a file}; shift ;;
        --wheel=*) WHEEL=${1#--wheel=} ;;
        --out) OUT=${2:?--out needs a directory}; shift ;;
        --out=*) OUT=${1#--out=} ;;
        --keep-running) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

say() { printf '[sdcheck %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[sdcheck] error: %s\n' "$*" >&2; exit 1; }

[[ -n $ROOT ]] || { usage >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || die "run as root (namespaces, chroot, mounts)"
ROOT=$(realpath -m "$ROOT")
[[ $ROOT != / && ! $ROOT -ef / ]] || die "refusing --root /: this must be a throwaway root, never the host"
case $ROOT/ in
    /tmp/*|/var/tmp/*|/run/*|/sys/*|/proc/*|/dev/*|/etc/*|/usr/*|/boot/*) die "refusing --root $ROOT" ;;
esac
mkdir -p "$ROOT"
OUT=${OUT:-$(dirname "$ROOT")/sdcheck-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
for tool in unshare nsenter setpriv chroot mknod; do command -v $tool >/dev/null || die "missing $tool"; done

# ------------------------------------------------------------------------------------ 1. the root
if [[ ! -f $ROOT/etc/debian_version ]]; then
    [[ -z $(ls -A "$ROOT") ]] || die "$ROOT is neither empty nor a Debian root"
    command -v debootstrap >/dev/null || die "apt-get install -y debootstrap"
    say "debootstrap $SUITE into $ROOT (a few minutes)"
    debootstrap --variant=minbase --include=$PACKAGES $SUITE "$ROOT" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 \
        || die "debootstrap failed: $OUT/debootstrap.log"
fi
touch "$ROOT/.edge-agent-sdcheck-root"

if [[ -z $WHEEL ]]; then
    say "building the wheel from $SRC_DIR"
    build=$(mktemp -d "$OUT/build.XXXXXX")
    (cd "$SRC_DIR" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - pyproject.toml README.md \
        edge_agent drivers diagnostics) | tar -xf - -C "$build"
    py=python3; [[ -x $SRC_DIR/.venv/bin/python ]] && py=$SRC_DIR/.venv/bin/python
    "$py" -m pip wheel -q --no-deps -w "$OUT/dist" "$build" >"$OUT/wheel-build.log" 2>&1 \
        || die "wheel build failed: $OUT/wheel-build.log"
    rm -rf "$build"
    WHEEL=$(ls -t "$OUT"/dist/edge_agent-*.whl | head -1)
fi
[[ -f $WHEEL ]] || die "no wheel $WHEEL"

# Run a command chrooted into the root, in a private mount + pid namespace (nothing mounted leaks out,
# every process dies with it), with the host's network (apt, PyPI). No systemd here.
in_chroot() {
    unshare --mount --propagation private --pid --fork --kill-child -- /bin/bash -c '
        set -e; R=$1; shift
        mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
        mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs "$R/dev"
        for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
            read -r name maj min <<<"$n"; mknod -m 0666 "$R/dev/$name" c "$maj" "$min"
        done
        ln -s /proc/self/fd "$R/dev/fd"
        exec chroot "$R" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
            PATH='"$INSIDE_PATH"' "$@"' sdcheck-chroot "$ROOT" "$@"
}

say "preparing the root (packages, masks, wheels, test files)"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
missing=()
for p in ${PACKAGES//,/ }; do
    in_chroot dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    say "apt-get install ${missing[*]}"
    in_chroot apt-get update -q >"$OUT/apt.log" 2>&1
    in_chroot apt-get install -y -q "${missing[@]}" >>"$OUT/apt.log" 2>&1 || die "apt failed: $OUT/apt.log"
fi

# Units that would reach the host's kernel, disks or clock, or wait for a console: masked in the root.
for u in systemd-sysctl.service systemd-modules-load.service systemd-binfmt.service \
        proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount sys-kernel-debug.mount \
        sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount dev-hugepages.mount \
        systemd-remount-fs.service systemd-fsck-root.service systemd-fsck@.service systemd-pstore.service \
        systemd-random-seed.service systemd-journald-audit.socket systemd-firstboot.service \
        systemd-logind.service systemd-timesyncd.service systemd-hwdb-update.service \
        systemd-machine-id-commit.service systemd-udevd.service systemd-udev-trigger.service \
        systemd-udev-settle.service getty.target console-getty.service getty@.service \
        container-getty@.service serial-getty@.service apt-daily.timer apt-daily-upgrade.timer \
        fstrim.timer fstrim.service e2scrub_all.timer e2scrub_reap.service; do
    ln -sfn /dev/null "$ROOT/etc/systemd/system/$u"
done
# The shipped unit is what is checked: no drop-ins left from experiments in this root.
rm -rf "$ROOT/etc/systemd/system/$UNIT.d"
# The agent's journal lines are what the checks read; keep the journal in memory, and quiet.
mkdir -p "$ROOT/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\n' >"$ROOT/etc/systemd/journald.conf.d/sdcheck.conf"

rm -rf "${ROOT:?}$STAGE"
mkdir -p "$ROOT$STAGE/deploy"
cp "$SCRIPT_DIR/install.sh" "$SCRIPT_DIR/edge-agent.service" "$SCRIPT_DIR/config.example.yaml" \
    "$SCRIPT_DIR/README.md" "$ROOT$STAGE/deploy/"
cp "$WHEEL" "$ROOT$STAGE/"
WHEEL_IN=$STAGE/$(basename "$WHEEL")
wheel_sum=$(sha256sum "$WHEEL" | cut -c1-16)
if [[ $(cat "$ROOT$WHEELS/.for" 2>/dev/null) != "$wheel_sum" ]]; then
    say "downloading the wheel's dependencies into $WHEELS (inside the root)"
    rm -rf "${ROOT:?}$WHEELS"
    # The host's CA bundle goes along: it may trust a TLS proxy that the root's ca-certificates does not.
    cp -L "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$ROOT$STAGE/host-ca.crt"
    in_chroot /bin/sh -c "python3 -m venv /root/sdcheck-dl && PIP_CERT=$STAGE/host-ca.crt \
        /root/sdcheck-dl/bin/pip download -q --disable-pip-version-check -d $WHEELS $WHEEL_IN" \
        >"$OUT/pip-download.log" 2>&1 \
        || die "pip download failed: $OUT/pip-download.log"
    echo "$wheel_sum" >"$ROOT$WHEELS/.for"
fi

# The test config: the simulated PLC of `edge-agent simulate` (docs/register-map.md) on port $PLC_PORT,
# the root's own mosquitto, and the vibration block so numpy/scipy run under the sandbox too.
cat >"$ROOT$STAGE/config.yaml" <<EOF
agent:
  id: sdcheck-gw
  site: sdcheck
  data_dir: /var/lib/edge-agent
mqtt:
  url: mqtt://127.0.0.1:1883
buffer:
  max_size: 64MB
  max_age: 7d
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    port: $PLC_PORT
    unit_id: 1
    poll_interval: 1s
    timeout: 500ms
    points:
      - {name: speed, table: holding, address: 0, type: uint16, unit: rpm}
      - {name: bearing_temp, table: holding, address: 8, type: float32, unit: degC}
      - {name: level, table: input, address: 0, type: uint16, scale: 0.1, unit: "%"}
  - name: plc-vib
    protocol: modbus_tcp
    host: 127.0.0.1
    port: $PLC_PORT
    unit_id: 1
    poll_interval: 10s
    timeout: 1s
    points:
      - {name: vib_de, table: input, address: 1000, type: int16, scale: 0.001, unit: g, kind: waveform,
         count: 2048, sample_rate_address: 999}
assets:
  - name: motor-1
    points: [plc/speed, plc/bearing_temp, plc-vib/vib_de]
    machine: {group: 2, foundation: rigid, speed_point: plc/speed}
    bearings:
      - {point: plc-vib/vib_de, model: SKF-6205}
rules:
  - point: plc/bearing_temp
    high: 80
    high_high: 95
summaries:
  interval: 60s
EOF

# ------------------------------------------------------------------------------------ 2. boot systemd
if [[ -d /sys/fs/cgroup/unified && $(stat -fc %T /sys/fs/cgroup/unified) == cgroup2fs ]]; then
    CG_PARENT=/sys/fs/cgroup/unified      # hybrid host: systemd inside gets the cgroup2 hierarchy only
elif [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    CG_PARENT=/sys/fs/cgroup
else
    die "no cgroup2 hierarchy on this host (needed for the namespaced systemd)"
fi
CG=$CG_PARENT/edge-agent-sdcheck
[[ ! -e $CG/cgroup.procs ]] || [[ -z $(find "$CG" -name cgroup.procs -exec cat {} + 2>/dev/null) ]] \
    || die "$CG still has processes: another check running? (see $OUT/systemd.pid)"

SDPID=""
UNSHARE_PID=""
cleanup() {
    local rc=$?
    if [[ -n $UNSHARE_PID ]] && kill -0 "$UNSHARE_PID" 2>/dev/null; then
        if [[ $KEEP -eq 1 && $rc -eq 0 ]]; then
            say "left running: systemd is host PID $SDPID; enter with"
            say "  nsenter -t $SDPID -m -u -i -n -p -r -w /bin/bash"
            say "stop with: kill -KILL $SDPID; then: find $CG -depth -type d -exec rmdir {} \\;"
            return
        fi
        say "powering the container's systemd off"
        timeout 20 nsenter -t "$SDPID" -m -u -i -n -p -r -w /usr/bin/env -i PATH=$INSIDE_PATH \
            systemctl poweroff >/dev/null 2>&1 || true
        for _ in $(seq 40); do kill -0 "$UNSHARE_PID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$SDPID" 2>/dev/null; then
            say "still running: SIGKILL to its PID 1 ($SDPID)"; kill -KILL "$SDPID" 2>/dev/null || true
        fi
        wait "$UNSHARE_PID" 2>/dev/null || true
    fi
    if [[ -d $CG ]]; then
        sleep 0.5
        find "$CG" -depth -type d -exec rmdir {} \; 2>/dev/null || say "warning: could not remove all of $CG"
    fi
    rm -f "$OUT/systemd.pid"
}
trap cleanup EXIT

mkdir -p "$CG"
: >"$OUT/console.log"
say "booting systemd in $ROOT (console: $OUT/console.log)"
# Stage 2 runs as PID 1 of the new namespaces: mounts, then becomes systemd.
STAGE2='
set -e
R=$1; CONSOLE=$2
mount --bind "$R" "$R"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
for p in sys sysrq-trigger; do
    [ -e "$R/proc/$p" ] || continue
    mount --bind "$R/proc/$p" "$R/proc/$p"; mount -o remount,bind,ro "$R/proc/$p"
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs "$R/dev"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    read -r name maj min <<<"$n"; mknod -m 0666 "$R/dev/$name" c "$maj" "$min"
done
mkdir -m 0755 "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"; ln -s fd/0 "$R/dev/stdin"; ln -s fd/1 "$R/dev/stdout"; ln -s fd/2 "$R/dev/stderr"
touch "$R/dev/console"; mount --bind "$CONSOLE" "$R/dev/console"
exec setpriv --bounding-set=-sys_module,-sys_time,-sys_rawio,-syslog,-audit_control,-audit_read,-audit_write,-mac_admin,-mac_override,-wake_alarm,-block_suspend \
    chroot "$R" /usr/bin/env -i container=other PATH='"$INSIDE_PATH"' LANG=C.UTF-8 /lib/systemd/systemd --show-status=yes
'
# The launcher moves itself into the sub-cgroup first, so the cgroup namespace's root is that cgroup.
/bin/bash -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sdcheck-launch "$CG" \
    unshare --pid --fork --kill-child --mount --uts --ipc --net --cgroup --propagation private -- \
    /bin/bash -c "$STAGE2" sdcheck-stage2 "$ROOT" "$OUT/console.log" >"$OUT/launcher.log" 2>&1 &
UNSHARE_PID=$!
for _ in $(seq 50); do
    SDPID=$(awk '{print $1}' "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null) || true
    [[ -n $SDPID ]] && break
    sleep 0.1
done
[[ -n $SDPID ]] || die "unshare did not start (see $OUT/launcher.log)"
echo "$SDPID" >"$OUT/systemd.pid"

inside() {
    nsenter -t "$SDPID" -m -u -i -n -p -r -w /usr/bin/env -i PATH=$INSIDE_PATH LANG=C.UTF-8 TERM=dumb \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
sctl() { inside systemctl --no-pager "$@"; }
prop() { sctl show -p "$1" --value "$UNIT"; }
state() { sctl show -p ActiveState -p SubState --value "$UNIT" | paste -sd/; }  # one query: a consistent pair

for _ in $(seq 120); do
    kill -0 "$SDPID" 2>/dev/null || die "systemd exited during boot: $OUT/launcher.log, $OUT/console.log"
    state=$(sctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.5
done
boot_state=$(sctl is-system-running 2>/dev/null || true)
say "system state: $boot_state"
sctl --failed >"$OUT/failed-units.txt" 2>&1 || true

# ------------------------------------------------------------------------------------ 3. checks
PASSED=0
FAILED=0
check() {  # check NAME CONDITION-COMMAND...
    local name=$1; shift
    if "$@"; then printf 'PASS  %s\n' "$name"; PASSED=$((PASSED + 1))
    else printf 'FAIL  %s\n' "$name"; FAILED=$((FAILED + 1)); fi
}
is_true() { [[ $1 == yes || $1 == 1 ]]; }
journal_agent() { inside journalctl --no-pager -o short-precise "$@"; }

check "systemd booted as PID 1 of the container (state: $boot_state)" \
    bash -c '[[ $1 == running || $1 == degraded ]]' _ "$boot_state"

# 3a. A previous run left an installation (enabled, so started at boot): remove it with the installer.
if inside test -e /opt/edge-agent; then
    uninstall_rc=0
    inside "$STAGE/deploy/install.sh" --uninstall --purge >"$OUT/uninstall.txt" 2>&1 || uninstall_rc=$?
    check "install.sh --uninstall --purge (previous run's installation): unit gone, user gone" \
        bash -c '[[ $1 -eq 0 && $2 != active ]] && ! grep -q "^edge-agent:" "$3/etc/passwd" &&
                 [[ ! -e $3/etc/systemd/system/edge-agent.service && ! -e $3/var/lib/edge-agent ]]' _ \
        "$uninstall_rc" "$(sctl is-active $UNIT 2>/dev/null)" "$ROOT"
fi

# 3b. install.sh, the documented way: fresh install (enabled, not started), then the site config.
say "install.sh $WHEEL_IN (inside, systemd running)"
install_rc=0
inside "$STAGE/deploy/install.sh" --pip-arg=--no-index --pip-arg=--find-links=$WHEELS "$WHEEL_IN" \
    >"$OUT/install-1.txt" 2>&1 || install_rc=$?
check "install.sh: exit 0, unit enabled, not started with the example config" \
    bash -c '[[ $1 -eq 0 && $2 == enabled && $3 != active ]]' _ "$install_rc" \
    "$(sctl is-enabled $UNIT 2>/dev/null)" "$(sctl is-active $UNIT 2>/dev/null)"

inside install -m 0640 -o root -g edge-agent "$STAGE/config.yaml" /etc/edge-agent/config.yaml
inside runuser -u edge-agent -- /opt/edge-agent/venv/bin/edge-agent check /etc/edge-agent/config.yaml \
    >"$OUT/config-check.txt" 2>&1 || true
sctl is-active mosquitto.service >/dev/null 2>&1 || sctl start mosquitto.service || true
inside systemd-run --unit=sdcheck-plc --property=Restart=on-failure \
    /opt/edge-agent/venv/bin/edge-agent simulate --modbus-port $PLC_PORT >/dev/null 2>&1 || true
sleep 3
check "helpers up: mosquitto and the simulated PLC (sdcheck-plc.service)" \
    bash -c '[[ $1 == active && $2 == active ]]' _ "$(sctl is-active mosquitto.service 2>/dev/null)" \
    "$(sctl is-active sdcheck-plc.service 2>/dev/null)"

# 3c. Start: "activating (start)" until READY=1, then "active (running)". PID 1 at debug level logs the
# notification it received, so the journal shows READY=1 arriving right before the state change.
inside systemd-analyze log-level debug
since_start=$(date -u '+%Y-%m-%d %H:%M:%S')
t0=$(date +%s%N)
sctl start --no-block $UNIT
: >"$OUT/start-states.txt"
last=""
for _ in $(seq 300); do
    s=$(state)
    if [[ $s != "$last" ]]; then
        printf '%6d ms  %s\n' $(( ($(date +%s%N) - t0) / 1000000 )) "$s" >>"$OUT/start-states.txt"
        last=$s
    fi
    [[ $s == active/running || $s == failed/* ]] && break
    sleep 0.1
done
inside systemd-analyze log-level info
journal_agent _PID=1 -u $UNIT --since="$since_start" | grep -E 'notification|start -> running|READY|Changed' \
    >"$OUT/start-journal.txt" || true
main_start=$(prop ExecMainStartTimestampMonotonic)
active_enter=$(prop ActiveEnterTimestampMonotonic)
ready_delay_ms=$(( (active_enter - main_start) / 1000 ))
echo "ExecMainStart -> ActiveEnter: ${ready_delay_ms} ms" >>"$OUT/start-states.txt"
check "start: activating/start first, active/running only after READY=1 (${ready_delay_ms} ms after exec)" \
    bash -c 'grep -q "activating/start" "$1" && grep -q "active/running" "$1" &&
             grep -q "READY=1" "$2" && [[ $3 -gt 0 ]]' _ "$OUT/start-states.txt" "$OUT/start-journal.txt" \
    "$ready_delay_ms"

for _ in $(seq 30); do  # a few polls, a broker connection, a waveform (plc-vib polls every 10 s)
    [[ $(prop StatusText) == *"2/2 devices up"* ]] && break
    sleep 1
done
sctl status $UNIT -l >"$OUT/status.txt" 2>&1 || true
check "systemctl status shows the agent's STATUS= line" grep -q 'Status: ".*devices up' "$OUT/status.txt"

# 3d. The sandbox: the agent runs, polls and publishes; the kernel shows the restrictions in place.
MAINPID=$(prop MainPID)
inside grep -E '^(Uid|Gid|Groups|NoNewPrivs|Seccomp|CapEff|CapBnd|CapPrm)' "/proc/$MAINPID/status" \
    >"$OUT/sandbox-proc-status.txt" 2>&1 || true
journal_agent -u $UNIT --since="$since_start" >"$OUT/journal-start.txt" 2>&1 || true
status_text=$(prop StatusText)
check "hardening: running as edge-agent, NoNewPrivs, seccomp, no capabilities" \
    bash -c 'grep -q "^NoNewPrivs:\s*1" "$1" && grep -q "^Seccomp:\s*2" "$1" &&
             grep -q "^CapBnd:\s*0000000000000000" "$1" && grep -q "^CapEff:\s*0000000000000000" "$1" &&
             ! grep -qE "^Uid:\s*0\s" "$1"' _ "$OUT/sandbox-proc-status.txt"
check "hardening: the agent works (2/2 devices up, broker connected: '$status_text')" \
    bash -c '[[ $1 == *"2/2 devices up"* && $1 == *"broker connected"* ]]' _ "$status_text"
check "hardening: no EPERM / permission errors / tracebacks in the agent's journal" \
    bash -c '! grep -qiE "operation not permitted|permission denied|EPERM|Traceback" "$1"' _ "$OUT/journal-start.txt"
# The device allow-list (not reproducible without systemd): a transient unit with the same device settings
# may open /dev/null but not a device outside the list (loop-control, 10:237: opening it does nothing);
# the same unit without DevicePolicy= opens it (the control). The node is made in /dev: /run is nodev.
# (No D-Bus in the root, so no systemd-run --wait/--pipe: oneshot units writing to a file.)
device_probe() {  # device_probe NAME [PROPERTY...]
    local name=$1; shift
    inside rm -f "/run/$name.out"
    inside systemd-run --quiet --unit="$name" -p Type=oneshot "$@" -p StandardOutput="append:/run/$name.out" \
        -p StandardError="append:/run/$name.out" /bin/sh -c 'exec 3</dev/null && echo null-ok;
        (exec 4</dev/sdcheck-loop-control) && echo other-opened || echo other-blocked' >/dev/null 2>&1 || true
    inside cat "/run/$name.out" 2>&1 || true
}
inside mknod -m 0666 /dev/sdcheck-loop-control c 10 237
dev_out=$(device_probe sdcheck-devices -p DevicePolicy=closed -p "DeviceAllow=char-ttyS rw" -p ProtectClock=yes)
dev_ctl=$(device_probe sdcheck-devices-control)
inside rm -f /dev/sdcheck-loop-control
printf 'DevicePolicy=closed:\n%s\nno DevicePolicy (control):\n%s\n' "$dev_out" "$dev_ctl" >"$OUT/device-policy.txt"
check "hardening: DevicePolicy=closed enforced (/dev/null opens, a device outside the list: EPERM; control opens it)" \
    bash -c '[[ $1 == *null-ok* && $1 == *other-blocked* && $1 == *"Operation not permitted"* &&
               $2 == *other-opened* ]]' _ "$dev_out" "$dev_ctl"
inside systemd-analyze security --no-pager $UNIT >"$OUT/security.txt" 2>&1 || true
grep -E '→ Overall exposure level' "$OUT/security.txt" | sed 's/^/      /' || true

# 3e. Reload: SIGHUP through ExecReload; the same process re-reads its config.
pid_before=$(prop MainPID)
reload_rc=0
sctl reload $UNIT || reload_rc=$?
sleep 2
journal_agent -u $UNIT --since=-10s >"$OUT/journal-reload.txt" 2>&1 || true
check "reload: exit 0, same MainPID, agent logs 'SIGHUP: re-reading'" \
    bash -c '[[ $1 -eq 0 && $2 == "$3" && $4 == active ]] && grep -q "SIGHUP: re-reading" "$5"' _ "$reload_rc" "$pid_before" "$(prop MainPID)" \
    "$(sctl is-active $UNIT)" "$OUT/journal-reload.txt"

# 3f. install.sh again = upgrade: keeps the config, restarts the running service (waits for READY=1).
install_rc=0
inside "$STAGE/deploy/install.sh" --pip-arg=--no-index --pip-arg=--find-links=$WHEELS "$WHEEL_IN" \
    >"$OUT/install-2.txt" 2>&1 || install_rc=$?
check "install.sh again (upgrade): exit 0, config kept, service restarted and active" \
    bash -c '[[ $1 -eq 0 && $2 != "$3" && $4 == active ]] && grep -q "kept the existing" "$5"' _ \
    "$install_rc" "$pid_before" "$(prop MainPID)" "$(sctl is-active $UNIT)" "$OUT/install-2.txt"

# 3g. Watchdog: SIGSTOP the main process; no WATCHDOG=1 for WatchdogSec -> killed -> restarted.
sleep 5
restarts_before=$(prop NRestarts)
pid_before=$(prop MainPID)
wd_usec=$(prop WatchdogUSec)
say "watchdog: SIGSTOP to MainPID $pid_before (WatchdogUSec=$wd_usec, NRestarts=$restarts_before)"
t_stop=$(date +%s)
since=$(date -u '+%Y-%m-%d %H:%M:%S')
inside kill -STOP "$pid_before"
restarted=0
for _ in $(seq 150); do
    sleep 1
    n=$(prop NRestarts); p=$(prop MainPID); a=$(sctl is-active $UNIT 2>/dev/null || true)
    if [[ $n -gt $restarts_before && $p != "$pid_before" && $p != 0 && $a == active ]]; then restarted=1; break; fi
done
t_back=$(( $(date +%s) - t_stop ))
journal_agent -u $UNIT --since="$since" >"$OUT/journal-watchdog.txt" 2>&1 || true
sctl status $UNIT -l >"$OUT/status-after-watchdog.txt" 2>&1 || true
check "watchdog: stalled process killed and restarted (NRestarts $restarts_before -> $(prop NRestarts), ${t_back} s)" \
    bash -c '[[ $1 -eq 1 ]] && grep -q "Watchdog timeout" "$2"' _ "$restarted" "$OUT/journal-watchdog.txt"
grep -E 'Watchdog timeout|Killing process|Fatal Python error|Scheduled restart|Started|Failed with result|Main process exited' \
    "$OUT/journal-watchdog.txt" | sed 's/^/      /' || true

# 3h. Stop: SIGTERM, STOPPING=1, clean exit well within TimeoutStopSec.
sleep 5
inside systemd-analyze log-level debug
since=$(date -u '+%Y-%m-%d %H:%M:%S')
t0=$(date +%s%N)
stop_rc=0
sctl stop $UNIT || stop_rc=$?
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
inside systemd-analyze log-level info
journal_agent -u $UNIT --since="$since" >"$OUT/journal-stop.txt" 2>&1 || true
stop_result=$(prop Result); stop_status=$(prop ExecMainStatus); stop_code=$(prop ExecMainCode)
check "stop: exit 0 in ${stop_ms} ms (< 30 s), STOPPING=1 seen, Result=$stop_result, status=$stop_status" \
    bash -c '[[ $1 -eq 0 && $2 -lt 30000 && $3 == success && $4 == 0 ]] && grep -q "STOPPING=1" "$5"' _ \
    "$stop_rc" "$stop_ms" "$stop_result" "$stop_status" "$OUT/journal-stop.txt"
: "$stop_code"

sctl status $UNIT -l >"$OUT/status-after-stop.txt" 2>&1 || true

# 3i. A configuration error (exit code 2) is not restarted (RestartPreventExitStatus=2).
inside cp -p /etc/edge-agent/config.yaml /etc/edge-agent/config.yaml.sdcheck
printf 'agent:\n  id: sdcheck-gw\ndevices: not-a-list\n' | inside sh -c 'cat >/etc/edge-agent/config.yaml'
bad_rc=0
sctl start $UNIT >/dev/null 2>&1 || bad_rc=$?
sleep 13   # RestartSec=10s: a restart would have happened by now
bad_state=$(sctl is-active $UNIT 2>/dev/null || true); bad_status=$(prop ExecMainStatus)
# (a manual start resets NRestarts to 0: a restart would have made it 1)
check "config error: start fails (rc $bad_rc), exit status $bad_status, not restarted (NRestarts $(prop NRestarts)), unit $bad_state" \
    bash -c '[[ $1 -ne 0 && $2 == 2 && $3 == 0 && $4 == failed ]]' _ "$bad_rc" "$bad_status" "$(prop NRestarts)" \
    "$bad_state"
inside mv /etc/edge-agent/config.yaml.sdcheck /etc/edge-agent/config.yaml
sctl reset-failed $UNIT 2>/dev/null || true

# Evidence: the whole boot's journal, its warnings, the unit's resolved properties, the cgroup controllers.
journal_agent -u $UNIT >"$OUT/journal-all.txt" 2>&1 || true
journal_agent -b >"$OUT/journal-boot.txt" 2>&1 || true
journal_agent -b -p warning >"$OUT/journal-warnings.txt" 2>&1 || true
sctl show $UNIT >"$OUT/unit-show.txt" 2>&1 || true
inside cat /sys/fs/cgroup/cgroup.controllers >"$OUT/cgroup-controllers.txt" 2>&1 || true
grep -E 'edge-agent' "$OUT/journal-warnings.txt" | grep -vE 'Watchdog timeout|Killing process|status=6/ABRT|result .watchdog|status=2|exit-code|Failed to start' \
    | sed 's/^/      warning: /' || true
printf '%d passed, %d failed; evidence in %s\n' "$PASSED" "$FAILED" "$OUT"
[[ $FAILED -eq 0 ]]
