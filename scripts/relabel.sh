#!/usr/bin/env bash
# Relabel recorded scenes with the expert (DAgger): every record of DATA_DIR gets
# the expert's label; the labelled copies are appended to OUT_DIR (or to
# DATA_DIR itself as new runs). The same in both worlds (no simulator needed).
#
# Usage: scripts/relabel.sh [--world carla|embedded] [--dry-run] [-- EXTRA ARGS]
#
#   DATA_DIR        scene dataset to relabel (default: $WORK_DIR/data when WORK_DIR is set)
#   OUT_DIR         dataset to append the relabelled records to (default: DATA_DIR)
#   EXPERT_CONFIG   expert config file (optional)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

parse_args embedded "$@"

if [[ -z "${DATA_DIR:-}" && -n "${WORK_DIR:-}" ]]; then
    DATA_DIR="${WORK_DIR}/data"
fi
require_vars "DATA_DIR|scene dataset to relabel (or set WORK_DIR to use \$WORK_DIR/data)"
require_dir DATA_DIR index.json
langprop_cmd
cmd=("${LANGPROP_CMD[@]}" relabel "${DATA_DIR}")
[[ -n "${OUT_DIR:-}" ]] && cmd+=(--out "${OUT_DIR}")
[[ -n "${EXPERT_CONFIG:-}" ]] && cmd+=(--expert-config "${EXPERT_CONFIG}")
run_or_print "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
