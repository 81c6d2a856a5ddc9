#!/usr/bin/env bash
# Start a CARLA server in the background and wait until it accepts connections.
#
# Usage: scripts/start_carla.sh [--port N] [--version X.Y.Z] [--gpu N] [--no-offscreen]
#                               [--wait SECONDS] [--world carla|embedded] [--dry-run] [-- EXTRA ARGS]
#
# Variables:
#   CARLA_ROOT      CARLA install folder (holds CarlaUE4.sh, or CarlaUnreal.sh for 0.10)
#   PORT            RPC port (default 2000; --port wins)
#   CARLA_VERSION   expected version (e.g. 0.9.16; --version wins): checked against
#                   $CARLA_ROOT/VERSION and the installed `carla` Python client
#   CARLA_GPU       GPU index for -graphicsadapter (--gpu wins)
#   CARLA_OFFSCREEN 1 (default) renders off screen (-RenderOffScreen); 0 opens a window
#   CARLA_WAIT_S    seconds to wait for the port (default 60)
#   CARLA_PIDFILE   where the server's pid is written (default /tmp/carla_<port>.pid)
#   CARLA_LOG       the server's output (default /tmp/carla_<port>.log)
# The embedded world (--world embedded) needs no server: nothing is started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

PORT="${PORT:-2000}"
CARLA_VERSION="${CARLA_VERSION:-}"
CARLA_GPU="${CARLA_GPU:-}"
CARLA_OFFSCREEN="${CARLA_OFFSCREEN:-1}"
CARLA_WAIT_S="${CARLA_WAIT_S:-60}"
# This script's own options, on top of parse_args' shared ones.
script_option() {
    case "$1" in
        --port) PORT="${2:-}"; OPTION_WORDS=2 ;;
        --version) CARLA_VERSION="${2:-}"; OPTION_WORDS=2 ;;
        --gpu) CARLA_GPU="${2:-}"; OPTION_WORDS=2 ;;
        --no-offscreen) CARLA_OFFSCREEN=0; OPTION_WORDS=1 ;;
        --wait) CARLA_WAIT_S="${2:-}"; OPTION_WORDS=2 ;;
        *) return 1 ;;
    esac
}
parse_args carla "$@"

if [[ "${WORLD}" == "embedded" ]]; then
    echo "The embedded world runs inside the langprop process; there is no server to start."
    exit 0
fi

require_vars "CARLA_ROOT|CARLA install folder (holds CarlaUE4.sh and PythonAPI/)"
require_dir CARLA_ROOT
[[ "${PORT}" =~ ^[0-9]+$ ]] || die "PORT=${PORT}: not a port number"
[[ "${CARLA_WAIT_S}" =~ ^[0-9]+$ ]] || die "CARLA_WAIT_S=${CARLA_WAIT_S}: not a number of seconds"

SERVER=""
for candidate in CarlaUE4.sh CarlaUnreal.sh; do
    if [[ -x "${CARLA_ROOT}/${candidate}" ]]; then
        SERVER="${CARLA_ROOT}/${candidate}"
        break
    fi
done
[[ -n "${SERVER}" ]] || die "CARLA_ROOT=${CARLA_ROOT}: no executable CarlaUE4.sh or CarlaUnreal.sh in it"

if [[ -n "${CARLA_VERSION}" ]]; then
    if [[ -f "${CARLA_ROOT}/VERSION" ]]; then
        found="$(tr -d '[:space:]' < "${CARLA_ROOT}/VERSION")"
        [[ "${found}" == "${CARLA_VERSION}"* ]] || \
            die "CARLA at ${CARLA_ROOT} is version ${found}, expected ${CARLA_VERSION} (CARLA_VERSION/--version)"
    fi
    client="$("${PYTHON}" -c 'import importlib.metadata as m; print(m.version("carla"))' 2>/dev/null || true)"
    if [[ -n "${client}" && "${client}" != "${CARLA_VERSION}"* ]]; then
        echo "warning: the Python client is carla ${client}; the server is ${CARLA_VERSION} (pip install carla==${CARLA_VERSION})" >&2
    fi
fi

args=(-carla-rpc-port="${PORT}" -nosound)
is_true "${CARLA_OFFSCREEN}" && args+=(-RenderOffScreen)
[[ -n "${CARLA_GPU}" ]] && args+=(-graphicsadapter="${CARLA_GPU}")
PIDFILE="${CARLA_PIDFILE:-/tmp/carla_${PORT}.pid}"
LOG="${CARLA_LOG:-/tmp/carla_${PORT}.log}"

if is_true "${DRY_RUN}"; then
    run_or_print "${SERVER}" "${args[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
    exit 0
fi

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null
}
if port_open; then
    die "port ${PORT} is already in use (a CARLA server may be running; stop it or pick --port)"
fi

"${SERVER}" "${args[@]}" ${EXTRA[@]+"${EXTRA[@]}"} > "${LOG}" 2>&1 &
pid=$!
echo "${pid}" > "${PIDFILE}"
echo "CARLA starting (pid ${pid}, port ${PORT}, log ${LOG}, pid file ${PIDFILE})"
for (( waited = 0; waited < CARLA_WAIT_S; waited++ )); do
    if ! kill -0 "${pid}" 2>/dev/null; then
        echo "error: CARLA exited during start-up; see ${LOG}" >&2
        exit 1
    fi
    if port_open; then
        echo "CARLA is up on port ${PORT} after ${waited} s. Stop it with: kill \$(cat ${PIDFILE})"
        exit 0
    fi
    sleep 1
done
echo "error: CARLA did not open port ${PORT} within ${CARLA_WAIT_S} s (pid ${pid} still running; see ${LOG})" >&2
exit 1
