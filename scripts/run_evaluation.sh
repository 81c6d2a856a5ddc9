#!/usr/bin/env bash
# Evaluate an agent on leaderboard routes, in CARLA (the leaderboard's evaluator)
# or in the embedded SUMO world (`langprop evaluate`).
#
# Usage: scripts/run_evaluation.sh [--world carla|embedded] [--dry-run] [-- EXTRA ARGS]
#
# CARLA (--world carla, the default), the leaderboard's variables:
#   CARLA_ROOT            CARLA install (a server must be running: scripts/start_carla.sh)
#   LEADERBOARD_ROOT      checkout of carla-simulator/leaderboard (1.0 or 2.0, detected)
#   SCENARIO_RUNNER_ROOT  checkout of carla-simulator/scenario_runner (matching branch)
#   ROUTES                routes XML
#   SCENARIOS             scenarios JSON (leaderboard 1.0 only; default: the leaderboard's
#                         data/all_towns_traffic_scenarios_public.json when present)
#   TEAM_AGENT            agent file (default: team_code/langprop_agent.py)
#   TEAM_CONFIG           agent config: checkpoint dir, .py script or config file
#                         (the LangProp agent needs it or LANGPROP_CHECKPOINT)
#   CHECKPOINT_ENDPOINT   results JSON (default: results/<routes name>.json)
#   REPETITIONS (1)  PORT (2000)  TM_PORT (8000)  CHALLENGE_TRACK_CODENAME (SENSORS)
#   RESUME (0)  DEBUG_CHALLENGE (0)  RECORD_PATH ("")
#   ROUTES_SUBSET         routes to run: '' = all, '0-4', '1,6,8' (1.0 and 2.0)
#   DEBUG_CHECKPOINT      live results of 2.0 (default: beside CHECKPOINT_ENDPOINT,
#                         <name>_live.txt; the evaluator's own default is ./live_results.txt)
#   LEADERBOARD_VERSION   force 1.0 or 2.0
#   PYTHON                interpreter with the carla client and this package (default python3);
#                         its carla comes first on PYTHONPATH: the installed wheel, else the
#                         egg for its version in $CARLA_ROOT/PythonAPI/carla/dist (--dry-run prints it)
# Embedded (--world embedded): ROUTES, TOWN (a town of `langprop town list`),
#   TEAM_AGENT, TEAM_CONFIG, CHECKPOINT_ENDPOINT, RESUME as above; TRAFFIC
#   (none/light/default/busy), SEED, LANGPROP_TOWNS (towns folder), SCENARIOS
#   (leaderboard-1.0 scenario file: the routes run its scenarios; unset: none).
# LANGPROP_* variables (LANGPROP_CHECKPOINT, LANGPROP_RECORD_DIR, ...) reach the agent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

parse_args carla "$@"

TEAM_AGENT="${TEAM_AGENT:-${REPO_ROOT}/team_code/langprop_agent.py}"
TEAM_CONFIG="${TEAM_CONFIG:-}"
RESUME="${RESUME:-0}"
if [[ -n "${ROUTES:-}" ]]; then
    CHECKPOINT_ENDPOINT="${CHECKPOINT_ENDPOINT:-${REPO_ROOT}/results/$(basename "${ROUTES%.*}").json}"
fi

check_agent() {
    require_file TEAM_AGENT
    if [[ "$(basename "${TEAM_AGENT}")" == "langprop_agent.py" && -z "${TEAM_CONFIG}" && -z "${LANGPROP_CHECKPOINT:-}" ]]; then
        die "the LangProp agent needs a policy: set TEAM_CONFIG (checkpoint dir, .py script or config file) or LANGPROP_CHECKPOINT"
    fi
    if [[ -n "${TEAM_CONFIG}" && ! -e "${TEAM_CONFIG}" ]]; then
        die "TEAM_CONFIG=${TEAM_CONFIG}: no such file or directory"
    fi
}

if [[ "${WORLD}" == "embedded" ]]; then
    require_vars "ROUTES|routes XML (leaderboard 1.0 or 2.0 format)" \
                 "TOWN|embedded town name (see: langprop town list; import CARLA towns with: langprop town import)"
    require_file ROUTES
    check_agent
    langprop_cmd
    cmd=("${LANGPROP_CMD[@]}" evaluate --world embedded --town "${TOWN}" --routes "${ROUTES}"
         --agent "${TEAM_AGENT}" --results "${CHECKPOINT_ENDPOINT}")
    [[ -n "${TEAM_CONFIG}" ]] && cmd+=(--agent-config "${TEAM_CONFIG}")
    [[ -n "${TRAFFIC:-}" ]] && cmd+=(--traffic "${TRAFFIC}")
    [[ -n "${SEED:-}" ]] && cmd+=(--seed "${SEED}")
    if [[ -n "${SCENARIOS:-}" ]]; then
        require_file SCENARIOS
        cmd+=(--scenarios "${SCENARIOS}")
    fi
    is_true "${RESUME}" || cmd+=(--no-resume)
    run_or_print "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
    exit $?
fi

require_vars "CARLA_ROOT|CARLA install folder (holds CarlaUE4.sh and PythonAPI/)" \
             "LEADERBOARD_ROOT|checkout of carla-simulator/leaderboard" \
             "SCENARIO_RUNNER_ROOT|checkout of carla-simulator/scenario_runner" \
             "ROUTES|routes XML"
require_dir CARLA_ROOT PythonAPI
require_dir LEADERBOARD_ROOT leaderboard/leaderboard_evaluator.py
require_dir SCENARIO_RUNNER_ROOT srunner
require_file ROUTES
check_agent

VERSION="$(leaderboard_version)"
if [[ "${VERSION}" == "1.0" ]]; then
    default_scenarios="${LEADERBOARD_ROOT}/data/all_towns_traffic_scenarios_public.json"
    if [[ -z "${SCENARIOS:-}" && -f "${default_scenarios}" ]]; then
        SCENARIOS="${default_scenarios}"
        echo "SCENARIOS not set: using ${SCENARIOS}" >&2
    fi
    require_vars "SCENARIOS|scenarios JSON of leaderboard 1.0 (e.g. \$LEADERBOARD_ROOT/data/all_towns_traffic_scenarios_public.json)"
    require_file SCENARIOS
fi

REPETITIONS="${REPETITIONS:-1}"
PORT="${PORT:-2000}"
TM_PORT="${TM_PORT:-8000}"
CHALLENGE_TRACK_CODENAME="${CHALLENGE_TRACK_CODENAME:-SENSORS}"
DEBUG_CHALLENGE="${DEBUG_CHALLENGE:-0}"
RECORD_PATH="${RECORD_PATH:-}"
export CHALLENGE_TRACK_CODENAME
carla_pythonpath
is_true "${DRY_RUN}" || mkdir -p "$(dirname "${CHECKPOINT_ENDPOINT}")"

cmd=("${PYTHON}" "${LEADERBOARD_ROOT}/leaderboard/leaderboard_evaluator.py"
     --routes="${ROUTES}" --repetitions="${REPETITIONS}" --track="${CHALLENGE_TRACK_CODENAME}"
     --checkpoint="${CHECKPOINT_ENDPOINT}" --agent="${TEAM_AGENT}" --agent-config="${TEAM_CONFIG}"
     --debug="${DEBUG_CHALLENGE}" --record="${RECORD_PATH}" --port="${PORT}")
if [[ "${VERSION}" == "1.0" ]]; then
    cmd+=(--scenarios="${SCENARIOS}" --trafficManagerPort="${TM_PORT}")
else
    # Without it 2.0 writes its live results to ./live_results.txt, wherever the script was started.
    DEBUG_CHECKPOINT="${DEBUG_CHECKPOINT:-${CHECKPOINT_ENDPOINT%.json}_live.txt}"
    cmd+=(--traffic-manager-port="${TM_PORT}" --debug-checkpoint="${DEBUG_CHECKPOINT}")
fi
# Both versions take --routes-subset ('' runs every route).
[[ -n "${ROUTES_SUBSET:-}" ]] && cmd+=(--routes-subset="${ROUTES_SUBSET}")
# The evaluator parses --resume with type=bool: any non-empty value means True, so pass it only when wanted.
is_true "${RESUME}" && cmd+=(--resume=True)

print_pythonpath
run_or_print "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
