#!/usr/bin/env bash
# Train predict_speed_and_steering scripts offline from a scene dataset (`langprop train`).
# The checkpoint lands in $WORK_DIR/train/$RUN_NAME; the agent runs it with
# TEAM_CONFIG or LANGPROP_CHECKPOINT set to that folder. No simulator is needed.
#
# Usage: scripts/train.sh [--world carla|embedded] [--dry-run] [-- EXTRA ARGS for langprop train]
#
#   WORK_DIR      pipeline work directory (required)
#   DATA_DIR      scene dataset (default: $WORK_DIR/data)
#   ROUTES        train on the records of these routes only (optional)
#   VAL_ROUTES    validate on the records of these held-out routes (optional)
#   RUN_NAME      run name under $WORK_DIR/train (default: offline)
#   EPOCHS        training epochs (optional)
#   SEED_SCRIPT   seed script (.py, or 'naive'/'cautious') (optional)
#   LLM: LANGPROP_LLM_BASE_URL / OPENAI_API_KEY / LANGPROP_LLM_MODEL; without them
#   the mutation optimizer runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

parse_args embedded "$@"

require_vars "WORK_DIR|pipeline work directory (checkpoints go to \$WORK_DIR/train/<run name>)"
DATA_DIR="${DATA_DIR:-${WORK_DIR}/data}"
if [[ ! -f "${DATA_DIR}/index.json" ]]; then
    die "no scene dataset at ${DATA_DIR} (no index.json): collect data first (scripts/collect_data.sh) or set DATA_DIR"
fi
langprop_cmd
cmd=("${LANGPROP_CMD[@]}" train --work-dir "${WORK_DIR}" --dataset "${DATA_DIR}" --name "${RUN_NAME:-offline}")
if [[ -n "${ROUTES:-}" ]]; then require_file ROUTES; cmd+=(--routes "${ROUTES}"); fi
if [[ -n "${VAL_ROUTES:-}" ]]; then require_file VAL_ROUTES; cmd+=(--val-routes "${VAL_ROUTES}"); fi
[[ -n "${EPOCHS:-}" ]] && cmd+=(--epochs "${EPOCHS}")
[[ -n "${SEED_SCRIPT:-}" ]] && cmd+=(--seed-script "${SEED_SCRIPT}")
run_or_print "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
