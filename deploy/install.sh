#!/usr/bin/env bash
# Install, upgrade or remove edge-agent as a systemd service on a Debian / Raspberry Pi OS gateway.
# Idempotent: run it again to upgrade or repair; config and data are never overwritten.
#
#   sudo deploy/install.sh [WHEEL]              install or upgrade (WHEEL: built from this tree when omitted)
#   sudo deploy/install.sh --uninstall          remove the program and unit, keep config, data and user
#   sudo deploy/install.sh --uninstall --purge  remove everything, including /etc/edge-agent and /var/lib/edge-agent
#   deploy/install.sh --root DIR [WHEEL]        do it all inside DIR (CI, image building): see --help
#
# What it does (see deploy/README.md for the same steps by hand):
#   1. system user `edge-agent` (no login, home /var/lib/edge-agent), member of `dialout` for serial ports
#   2. virtualenv /opt/edge-agent/venv with the wheel and its dependencies
#   3. /etc/edge-agent/config.yaml from the example if there is none (root:edge-agent 0640), directory 0770
#      so remote config changes can replace the file atomically
#   4. /var/lib/edge-agent (edge-agent 0750)
#   5. /etc/systemd/system/edge-agent.service, daemon-reload, enable, restart
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(dirname "$SCRIPT_DIR")
SERVICE_USER=edge-agent
PREFIX=/opt/edge-agent
VENV=$PREFIX/venv
CONF_DIR=/etc/edge-agent
STATE_DIR=/var/lib/edge-agent
UNIT_FILE=/etc/systemd/system/edge-agent.service
UNIT=edge-agent.service

ROOT=""
WHEEL=""
PYTHON=${PYTHON:-python3}
ACTION=install
PURGE=0
START=auto
NO_DEPS=0
PIP_ARGS=()

usage() {
    cat <<EOF
usage: install.sh [options] [WHEEL]

  WHEEL             edge_agent-*.whl to install (default: build one from $SRC_DIR)
  --uninstall       stop and remove the service and /opt/edge-agent; keep config, data and the user
  --purge           with --uninstall: also remove $CONF_DIR, $STATE_DIR and the user
  --root DIR        install into DIR instead of / (CI, image building). The user is created with
                    'useradd --root DIR' when DIR/etc/passwd exists and this runs as root, else skipped;
                    systemctl is never run there (the commands are printed instead)
  --python PATH     interpreter for the virtualenv (default: python3, must be >= 3.11)
  --start           start the service even when config.yaml was just created from the example
  --no-start        install and enable, but do not (re)start the service
  --no-deps         install the wheel without its dependencies (they must come from elsewhere)
  --pip-arg ARG     pass ARG to pip (repeatable), e.g. --pip-arg=--index-url=https://mirror/simple
  -h, --help        this text
EOF
}

say() { printf 'edge-agent install: %s\n' "$*"; }
die() { printf 'edge-agent install: error: %s\n' "$*" >&2; exit 1; }
skipped() { printf 'edge-agent install: [--root] not run here: %s\n' "$*"; }

ORIGINAL_ARGS="$*"
while [[ $# -gt 0 ]]; do
    case $1 in
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        --root) [[ $# -ge 2 ]] || die "--root needs a directory"; ROOT=$2; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        --python) [[ $# -ge 2 ]] || die "--python needs a path"; PYTHON=$2; shift ;;
        --python=*) PYTHON=${1#--python=} ;;
        --start) START=yes ;;
        --no-start) START=no ;;
        --no-deps) NO_DEPS=1 ;;
        --pip-arg) [[ $# -ge 2 ]] || die "--pip-arg needs a value"; PIP_ARGS+=("$2"); shift ;;
        --pip-arg=*) PIP_ARGS+=("${1#--pip-arg=}") ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option '$1'" ;;
        *) [[ -z $WHEEL ]] || die "only one wheel may be given ('$WHEEL' and '$1')"; WHEEL=$1 ;;
    esac
    shift
done

[[ $PURGE -eq 0 || $ACTION == uninstall ]] || die "--purge only makes sense with --uninstall"

if [[ -n $ROOT ]]; then
    [[ -d $ROOT ]] || die "--root $ROOT: no such directory (create it first)"
    ROOT=$(cd "$ROOT" && pwd)
    [[ $ROOT != / ]] || die "--root / is the running system: run without --root"
else
    [[ $(id -u) -eq 0 ]] || die "run as root, e.g. sudo $0${ORIGINAL_ARGS:+ $ORIGINAL_ARGS} (or use --root DIR)"
fi

# Paths as seen from the installer (inside --root when given).
R_PREFIX=$ROOT$PREFIX
R_VENV=$ROOT$VENV
R_CONF_DIR=$ROOT$CONF_DIR
R_STATE_DIR=$ROOT$STATE_DIR
R_UNIT_FILE=$ROOT$UNIT_FILE

systemd_running() { [[ -z $ROOT && -d /run/systemd/system ]]; }

systemctl_do() {
    if [[ -n $ROOT ]]; then
        skipped "systemctl $*"
    elif systemd_running; then
        systemctl "$@"
    else
        say "systemd is not running here: skipped 'systemctl $*'"
    fi
}

# Can we manage users in this root? Real system: yes. --root: only with DIR/etc/passwd and root rights.
can_manage_users() { [[ -z $ROOT ]] || [[ -f $ROOT/etc/passwd && $(id -u) -eq 0 ]]; }

user_exists() {
    if [[ -n $ROOT ]]; then
        [[ -f $ROOT/etc/passwd ]] && grep -q "^$SERVICE_USER:" "$ROOT/etc/passwd"
    else
        getent passwd "$SERVICE_USER" >/dev/null
    fi
}

group_exists() {
    if [[ -n $ROOT ]]; then
        [[ -f $ROOT/etc/group ]] && grep -q "^$1:" "$ROOT/etc/group"
    else
        getent group "$1" >/dev/null
    fi
}

root_args() { if [[ -n $ROOT ]]; then printf -- '--root\n%s\n' "$ROOT"; fi; }

ensure_user() {
    local -a rooted=()
    mapfile -t rooted < <(root_args)
    if ! can_manage_users; then
        skipped "useradd --system --user-group --home-dir $STATE_DIR --no-create-home --shell /usr/sbin/nologin $SERVICE_USER"
        skipped "usermod --append --groups dialout $SERVICE_USER"
        return
    fi
    if user_exists; then
        say "user $SERVICE_USER exists"
    else
        # its group may have outlived a purge (userdel keeps a group that still has members): reuse it
        local -a group_opt=(--user-group)
        if group_exists "$SERVICE_USER"; then group_opt=(--gid "$SERVICE_USER"); fi
        useradd "${rooted[@]}" --system "${group_opt[@]}" --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "edge-agent service" "$SERVICE_USER" 2>&1 \
            | grep -v "missing or non-executable shell" || true
        user_exists || die "could not create user $SERVICE_USER"
        say "created system user $SERVICE_USER"
    fi
    if group_exists dialout; then
        usermod "${rooted[@]}" --append --groups dialout "$SERVICE_USER"
    else
        say "no dialout group here: serial ports will not be reachable (the unit still asks for it)"
    fi
}

# chown_to OWNER:GROUP PATH: names on the real system, numeric ids inside --root (the host has no such user).
chown_to() {
    local spec=$1 path=$2 user=${1%%:*} group=${1##*:} uid gid
    if [[ -z $ROOT ]]; then
        chown "$spec" "$path"
    elif can_manage_users && user_exists; then
        uid=$(awk -F: -v n="$user" '$1 == n {print $3}' "$ROOT/etc/passwd")
        gid=$(awk -F: -v n="$group" '$1 == n {print $3}' "$ROOT/etc/group")
        chown "${uid:?}:${gid:?}" "$path"
    else
        skipped "chown $spec $path"
    fi
}

check_python() {
    command -v "$PYTHON" >/dev/null || die "no Python interpreter '$PYTHON' (install python3, or pass --python PATH)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
        || die "edge-agent needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
        || die "$PYTHON cannot create virtualenvs: apt-get install python3-venv"
}

ensure_venv() {
    if [[ -x $R_VENV/bin/python ]] && "$R_VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "virtualenv $VENV exists"
    else
        rm -rf "$R_VENV"
        install -d -m 0755 "$R_PREFIX"
        "$PYTHON" -m venv "$R_VENV"
        say "created virtualenv $VENV ($("$R_VENV/bin/python" -V))"
    fi
}

# Build a wheel from the source tree without writing into it (a copy is built in a temporary directory).
build_wheel() {
    local work=$1
    [[ -f $SRC_DIR/pyproject.toml ]] || die "no wheel given and no source tree at $SRC_DIR (pass the .whl path)"
    mkdir -p "$work/src" "$work/dist"
    (cd "$SRC_DIR" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - pyproject.toml README.md \
        edge_agent drivers diagnostics) | tar -xf - -C "$work/src"
    say "building the wheel from $SRC_DIR" >&2
    "$R_VENV/bin/python" -m pip wheel --quiet --no-deps "${PIP_ARGS[@]}" -w "$work/dist" "$work/src" >&2
    local built=("$work"/dist/edge_agent-*.whl)
    [[ -f ${built[0]} ]] || die "building the wheel produced nothing in $work/dist"
    printf '%s\n' "${built[0]}"
}

install_wheel() {
    local wheel=$1
    if [[ $NO_DEPS -eq 0 ]]; then  # dependencies first (only what is missing or too old)
        "$R_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PIP_ARGS[@]}" "$wheel"
    fi
    # The same version may be installed already: make sure these exact files are in place.
    "$R_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
        "${PIP_ARGS[@]}" "$wheel"
    [[ -x $R_VENV/bin/edge-agent ]] || die "the wheel did not install the edge-agent command"
    say "installed $(basename "$wheel") into $VENV"
}

install_files() {
    install -d -m 0755 "$R_PREFIX"
    install -m 0644 "$SCRIPT_DIR/README.md" "$R_PREFIX/README.md"

    install -d -m 0770 "$R_CONF_DIR"
    chmod 0770 "$R_CONF_DIR"
    chown_to "root:$SERVICE_USER" "$R_CONF_DIR"
    install -m 0644 "$SCRIPT_DIR/config.example.yaml" "$R_CONF_DIR/config.example.yaml"
    FRESH_CONFIG=0
    if [[ -e $R_CONF_DIR/config.yaml ]]; then
        say "kept the existing $CONF_DIR/config.yaml"
    else
        install -m 0640 "$SCRIPT_DIR/config.example.yaml" "$R_CONF_DIR/config.yaml"
        chown_to "root:$SERVICE_USER" "$R_CONF_DIR/config.yaml"
        FRESH_CONFIG=1
        say "created $CONF_DIR/config.yaml from the example: edit it for this site"
    fi

    install -d -m 0750 "$R_STATE_DIR"
    chown_to "$SERVICE_USER:$SERVICE_USER" "$R_STATE_DIR"

    install -d -m 0755 "$(dirname "$R_UNIT_FILE")"
    install -m 0644 "$SCRIPT_DIR/edge-agent.service" "$R_UNIT_FILE"
    say "installed $UNIT_FILE"
}

do_install() {
    for f in edge-agent.service config.example.yaml README.md; do
        [[ -f $SCRIPT_DIR/$f ]] || die "$SCRIPT_DIR/$f is missing: run install.sh from a complete deploy/ directory"
    done
    check_python
    [[ -z $WHEEL || -f $WHEEL ]] || die "wheel '$WHEEL' not found"
    ensure_user
    ensure_venv
    local work wheel=$WHEEL
    work=$(mktemp -d)
    # shellcheck disable=SC2064  # expand $work now
    trap "rm -rf '$work'" EXIT
    [[ -n $wheel ]] || wheel=$(build_wheel "$work")
    install_wheel "$wheel"
    install_files
    local check_rc=0
    "$R_VENV/bin/edge-agent" check "$R_CONF_DIR/config.yaml" >/dev/null 2>&1 || check_rc=$?
    if [[ $check_rc -eq 2 ]]; then
        say "warning: $CONF_DIR/config.yaml does not pass 'edge-agent check'; fix it before starting"
        [[ $START == yes ]] || START=no
    elif [[ $check_rc -ne 0 ]]; then
        say "warning: 'edge-agent check' could not run (exit $check_rc; missing dependencies with --no-deps?)"
        [[ $START == yes ]] || START=no
    fi

    systemctl_do daemon-reload
    systemctl_do enable "$UNIT"
    if [[ $START == no || ($START == auto && $FRESH_CONFIG -eq 1) ]]; then
        say "not starting: edit $CONF_DIR/config.yaml, check it with"
        say "  $VENV/bin/edge-agent check $CONF_DIR/config.yaml"
        say "then: systemctl restart $UNIT"
    else
        # Type=notify: this waits until the agent has sent READY=1 (or failed).
        systemctl_do restart "$UNIT" || die "the service did not start; see: journalctl -u edge-agent -n 50"
    fi
    say "done: $("$R_VENV/bin/edge-agent" --version)"
}

do_uninstall() {
    if [[ -f $R_UNIT_FILE ]]; then
        systemctl_do disable --now "$UNIT"
    fi
    rm -f "$R_UNIT_FILE"
    systemctl_do daemon-reload
    rm -rf "$R_PREFIX"
    say "removed $PREFIX and $UNIT_FILE"
    if [[ $PURGE -eq 1 ]]; then
        rm -rf "$R_CONF_DIR" "$R_STATE_DIR"
        say "purged $CONF_DIR and $STATE_DIR"
        if can_manage_users; then
            if user_exists; then
                local -a rooted=()
                mapfile -t rooted < <(root_args)
                userdel "${rooted[@]}" "$SERVICE_USER"
                say "removed user $SERVICE_USER"
            fi
        else
            skipped "userdel $SERVICE_USER"
        fi
    else
        say "kept $CONF_DIR, $STATE_DIR and user $SERVICE_USER (add --purge to remove them)"
    fi
}

case $ACTION in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac
