#!/usr/bin/env bash
# Collect training data: drive routes with the privileged expert and record every
# tick's scene with the expert's label into the scene dataset <WORK_DIR>/data.
#
# Usage: scripts/collect_data.sh [--world carla|embedded] [--dry-run] [-- EXTRA ARGS]
#
# Both worlds:
#   WORK_DIR   pipeline work directory; the dataset goes to $WORK_DIR/data
#   ROUTES     routes XML
# CARLA (--world carla, the default): the variables of scripts/run_evaluation.sh
#   (CARLA_ROOT, LEADERBOARD_ROOT, SCENARIO_RUNNER_ROOT, SCENARIOS for 1.0, PORT, ...);
#   results go to CHECKPOINT_ENDPOINT (default $WORK_DIR/collect/results.json).
# Embedded (--world embedded, runs `langprop collect`): TOWN; optional TRAFFIC,
#   SEED, WORKERS, LANGPROP_TOWNS, SCENARIOS (leaderboard-1.0 scenario file).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

parse_args carla "$@"

if [[ "${WORLD}" == "embedded" ]]; then
    require_vars "WORK_DIR|pipeline work directory (the dataset goes to \$WORK_DIR/data)" \
                 "ROUTES|routes XML" \
                 "TOWN|embedded town name (see: langprop town list)"
    require_file ROUTES
    langprop_cmd
    cmd=("${LANGPROP_CMD[@]}" collect --town "${TOWN}" --routes "${ROUTES}" --work-dir "${WORK_DIR}")
    [[ -n "${TRAFFIC:-}" ]] && cmd+=(--traffic "${TRAFFIC}")
    [[ -n "${SEED:-}" ]] && cmd+=(--seed "${SEED}")
    [[ -n "${WORKERS:-}" ]] && cmd+=(--workers "${WORKERS}")
    if [[ -n "${SCENARIOS:-}" ]]; then
        require_file SCENARIOS
        cmd+=(--scenarios "${SCENARIOS}")
    fi
    run_or_print "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
    exit $?
fi

require_vars "WORK_DIR|pipeline work directory (the dataset goes to \$WORK_DIR/data)"
export TEAM_AGENT="${REPO_ROOT}/team_code/expert_agent.py"
export TEAM_CONFIG="${TEAM_CONFIG:-}"
export LANGPROP_RECORD_DIR="${WORK_DIR}/data"
export CHECKPOINT_ENDPOINT="${CHECKPOINT_ENDPOINT:-${WORK_DIR}/collect/results.json}"
is_true "${DRY_RUN}" || mkdir -p "${LANGPROP_RECORD_DIR}"
args=(--world carla)
is_true "${DRY_RUN}" && args+=(--dry-run)
exec "${SCRIPTS_DIR}/run_evaluation.sh" "${args[@]}" -- ${EXTRA[@]+"${EXTRA[@]}"}
