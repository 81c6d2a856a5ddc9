# Shared helpers of the scripts in this folder (sourced, not run).
#
# Every script checks its variables before doing anything and says exactly
# which are missing and what each is for; `--dry-run` prints the command
# instead of running it; `--world carla|embedded` (or $WORLD) picks CARLA or the
# embedded SUMO world (run through the `langprop` command).

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPTS_DIR}/.." && pwd)"
export REPO_ROOT
# The interpreter for the evaluator and helper snippets: it needs this package and the carla client.
PYTHON="${PYTHON:-python3}"

# die MESSAGE...: print an error to stderr and exit 2 (a usage/config error).
die() {
    echo "error: $*" >&2
    exit 2
}

# is_true VALUE: 1/true/yes/on (any case) -> success.
is_true() {
    case "$(printf '%s' "${1:-}" | tr '[:upper:]' '[:lower:]')" in
        1|true|yes|on) return 0 ;;
        *) return 1 ;;
    esac
}

# require_vars "NAME|what it is" ...: exit 2 listing every unset/empty NAME with its meaning.
require_vars() {
    local missing=() spec name what
    for spec in "$@"; do
        name="${spec%%|*}"
        what="${spec#*|}"
        if [[ -z "${!name:-}" ]]; then
            missing+=("  ${name}: ${what}")
        fi
    done
    if (( ${#missing[@]} > 0 )); then
        {
            echo "error: $(basename "$0"): missing environment variable(s):"
            printf '%s\n' "${missing[@]}"
            echo "Set them (export NAME=...) and run again; see the header of $(basename "$0")."
        } >&2
        exit 2
    fi
}

# require_file NAME: the path in variable NAME must be an existing file.
require_file() {
    local name="$1"
    [[ -f "${!name}" ]] || die "${name}=${!name}: no such file"
}

# require_dir NAME [SUBPATH]: the path in NAME must be a directory (containing SUBPATH).
require_dir() {
    local name="$1" sub="${2:-}"
    [[ -d "${!name}" ]] || die "${name}=${!name}: no such directory"
    if [[ -n "${sub}" && ! -e "${!name}/${sub}" ]]; then
        die "${name}=${!name} does not look right: ${!name}/${sub} is missing"
    fi
}

# check_world: $WORLD must be carla or embedded.
check_world() {
    case "${WORLD}" in
        carla|embedded) ;;
        *) die "unknown world '${WORLD}' (use --world carla or --world embedded)" ;;
    esac
}

# langprop_cmd: the `langprop` command as an array in LANGPROP_CMD ($LANGPROP_BIN wins).
langprop_cmd() {
    if [[ -n "${LANGPROP_BIN:-}" ]]; then
        read -r -a LANGPROP_CMD <<< "${LANGPROP_BIN}"
    elif command -v langprop >/dev/null 2>&1; then
        LANGPROP_CMD=(langprop)
    elif [[ -x "${REPO_ROOT}/.venv/bin/langprop" ]]; then
        LANGPROP_CMD=("${REPO_ROOT}/.venv/bin/langprop")
    else
        LANGPROP_CMD=("${PYTHON}" -c "from langprop_driving.cli import main; main()")
    fi
}

# run_or_print CMD...: run the command, or print it (shell-quoted) with --dry-run.
run_or_print() {
    if is_true "${DRY_RUN:-0}"; then
        printf '%q ' "$@"
        echo
    else
        "$@"
    fi
}

# carla_pythonpath: PYTHONPATH as the leaderboard's get-started page builds it
# ($CARLA_ROOT/PythonAPI/carla for CARLA's `agents`, scenario_runner,
# leaderboard), plus this repo, with the `carla` client that matches ${PYTHON}
# first: an installed carla wheel (then nothing is added for it), else the egg of
# $CARLA_ROOT/PythonAPI/carla/dist built for this Python version. An egg built for
# another Python version is never used (it fails inside the evaluator with an
# obscure import error); with no match the script stops and says what it found.
# Sets CARLA_CLIENT (where carla comes from) and exports PYTHONPATH.
carla_pythonpath() {
    local version installed egg candidate others=()
    version="$("${PYTHON}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
        || die "PYTHON=${PYTHON}: cannot run it"
    # What this Python imports as carla without our additions (a pip wheel, a .pth file).
    installed="$(PYTHONPATH= "${PYTHON}" -c 'import importlib.util as u; s = u.find_spec("carla"); print(s.origin if s else "")' 2>/dev/null || true)"
    local parts=()
    if [[ -n "${installed}" ]]; then
        CARLA_CLIENT="installed for Python ${version}: ${installed}"
    else
        for candidate in "${CARLA_ROOT}"/PythonAPI/carla/dist/carla-*.egg; do
            [[ -e "${candidate}" ]] || continue
            if [[ "$(basename "${candidate}")" == *"-py${version}-"* || "$(basename "${candidate}")" == *"-py${version}.egg" ]]; then
                egg="${candidate}"
            else
                others+=("$(basename "${candidate}")")
            fi
        done
        if [[ -z "${egg:-}" ]]; then
            die "no carla client for Python ${version} (PYTHON=${PYTHON}): not installed (pip install carla==<your CARLA version>) and no carla-*-py${version}-*.egg in ${CARLA_ROOT}/PythonAPI/carla/dist${others[0]+ (found: ${others[*]}; set PYTHON to an interpreter of that version)}"
        fi
        CARLA_CLIENT="egg for Python ${version}: ${egg}"
        parts+=("${egg}")
    fi
    parts+=("${CARLA_ROOT}/PythonAPI/carla" "${SCENARIO_RUNNER_ROOT}" "${LEADERBOARD_ROOT}" "${REPO_ROOT}")
    local joined
    joined="$(IFS=:; echo "${parts[*]}")"
    export PYTHONPATH="${joined}${PYTHONPATH:+:${PYTHONPATH}}"
}

# print_pythonpath: with --dry-run, the PYTHONPATH the command runs with (a line
# to paste before it) and where carla comes from (stderr).
print_pythonpath() {
    if is_true "${DRY_RUN:-0}"; then
        echo "carla client: ${CARLA_CLIENT}" >&2
        printf 'export PYTHONPATH=%q\n' "${PYTHONPATH}"
    fi
}

# leaderboard_version: 2.0 when the evaluator takes --traffic-manager-port, else 1.0 ($LEADERBOARD_VERSION wins).
leaderboard_version() {
    if [[ -n "${LEADERBOARD_VERSION:-}" ]]; then
        echo "${LEADERBOARD_VERSION}"
    elif grep -q -- "--traffic-manager-port" "${LEADERBOARD_ROOT}/leaderboard/leaderboard_evaluator.py" 2>/dev/null; then
        echo "2.0"
    else
        echo "1.0"
    fi
}

# print_help: the header comment of the running script, without the '#'.
print_help() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

# parse_args DEFAULT_WORLD "$@": the options every script shares (and the
# script's own, through an optional script_option function). Sets WORLD
# ($WORLD, else DEFAULT_WORLD; --world), DRY_RUN (--dry-run) and EXTRA (what
# follows --), prints the help for -h/--help, and checks the world.
parse_args() {
    WORLD="${WORLD:-$1}"
    shift
    DRY_RUN="${DRY_RUN:-0}"
    EXTRA=()
    while (( $# > 0 )); do
        case "$1" in
            --world) WORLD="${2:-}"; shift 2 ;;
            --world=*) WORLD="${1#*=}"; shift ;;
            --dry-run) DRY_RUN=1; shift ;;
            -h|--help) print_help; exit 0 ;;
            --) shift; EXTRA=("$@"); break ;;
            *)
                # A script with options of its own defines script_option, which
                # sets OPTION_WORDS to the number of words it took.
                if declare -F script_option > /dev/null && script_option "$@"; then
                    shift "${OPTION_WORDS}"
                else
                    die "unknown option '$1' (see --help)"
                fi ;;
        esac
    done
    check_world
}
