#!/usr/bin/env bash
# DAgger with CARLA: each iteration drives the current script on ROUTES (the
# LangProp agent, recording every tick; the expert drives a route with
# probability beta), imports the recording into $WORK_DIR/data (`langprop
# import-rollout`: ticks marked with the time to the run's next infraction,
# relabelled by the expert, appended), and trains again from the current best
# script. --world embedded runs the same
# loop in the embedded world (`langprop dagger`).
#
# Usage: scripts/dagger_carla.sh [--world carla|embedded] [--dry-run] [-- EXTRA ARGS for langprop train/dagger]
#
# Both worlds:
#   WORK_DIR      pipeline work directory (data in $WORK_DIR/data)
#   ROUTES        routes XML driven (and trained on)
#   CHECKPOINT    where to start: a checkpoint directory or a .py script
#   ITERATIONS (2)  DAGGER_BETA (0.0)  BETA_DECAY (0.5: beta * decay^(i-1))  SEED (0)
#   PYTHON        interpreter with this package and the carla client (default python3)
# --dry-run prints the commands (it still writes each iteration's agent.json).
# CARLA (default): the variables of scripts/run_evaluation.sh (CARLA_ROOT,
#   LEADERBOARD_ROOT, SCENARIO_RUNNER_ROOT, SCENARIOS for 1.0, PORT, TM_PORT, ...).
# Embedded: TOWN; optional TRAFFIC, WORKERS, LANGPROP_TOWNS, SCENARIOS (leaderboard-1.0 scenario file).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

parse_args carla "$@"

ITERATIONS="${ITERATIONS:-2}"
DAGGER_BETA="${DAGGER_BETA:-0.0}"
BETA_DECAY="${BETA_DECAY:-0.5}"
SEED="${SEED:-0}"
[[ "${ITERATIONS}" =~ ^[0-9]+$ ]] || die "ITERATIONS=${ITERATIONS}: not a whole number"

common_vars=("WORK_DIR|pipeline work directory (data in \$WORK_DIR/data)"
             "ROUTES|routes XML driven and trained on"
             "CHECKPOINT|starting policy: a checkpoint directory or a .py script")

if [[ "${WORLD}" == "embedded" ]]; then
    require_vars "${common_vars[@]}" "TOWN|embedded town name (see: langprop town list)"
    require_file ROUTES
    [[ -e "${CHECKPOINT}" ]] || die "CHECKPOINT=${CHECKPOINT}: no such file or directory"
    langprop_cmd
    cmd=("${LANGPROP_CMD[@]}" dagger --town "${TOWN}" --routes "${ROUTES}" --work-dir "${WORK_DIR}"
         --checkpoint "${CHECKPOINT}" --iterations "${ITERATIONS}" --beta "${DAGGER_BETA}"
         --beta-decay "${BETA_DECAY}" --seed "${SEED}")
    [[ -n "${TRAFFIC:-}" ]] && cmd+=(--traffic "${TRAFFIC}")
    [[ -n "${WORKERS:-}" ]] && cmd+=(--workers "${WORKERS}")
    if [[ -n "${SCENARIOS:-}" ]]; then
        require_file SCENARIOS
        cmd+=(--scenarios "${SCENARIOS}")
    fi
    run_or_print "${cmd[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
    exit $?
fi

require_vars "${common_vars[@]}" \
             "CARLA_ROOT|CARLA install folder (holds CarlaUE4.sh and PythonAPI/)" \
             "LEADERBOARD_ROOT|checkout of carla-simulator/leaderboard" \
             "SCENARIO_RUNNER_ROOT|checkout of carla-simulator/scenario_runner"
require_file ROUTES
[[ -e "${CHECKPOINT}" ]] || die "CHECKPOINT=${CHECKPOINT}: no such file or directory"
langprop_cmd

current="$(realpath "${CHECKPOINT}")"
for (( i = 1; i <= ITERATIONS; i++ )); do
    stage="${WORK_DIR}/carla/dagger-${i}"
    beta="$("${PYTHON}" -c "import sys; print(float(sys.argv[1]) * float(sys.argv[2]) ** ($i - 1))" "${DAGGER_BETA}" "${BETA_DECAY}")"
    echo "== DAgger iteration ${i}/${ITERATIONS}: driving ${current} (beta ${beta})"
    mkdir -p "${stage}"
    # The agent's config: the policy, the expert-mixing probability and where to record.
    "${PYTHON}" - "${stage}/agent.json" "${current}" "${beta}" "${stage}/recorded" "${SEED}" <<'PY'
import json, sys
path, checkpoint, beta, record_dir, seed = sys.argv[1:]
with open(path, "w") as f:
    json.dump({"checkpoint": checkpoint, "dagger_beta": float(beta), "record_dir": record_dir,
               "seed": int(seed), "sandbox": True}, f, indent=2)
PY
    args=(--world carla)
    is_true "${DRY_RUN}" && args+=(--dry-run)
    TEAM_AGENT="${REPO_ROOT}/team_code/langprop_agent.py" TEAM_CONFIG="${stage}/agent.json" \
        CHECKPOINT_ENDPOINT="${stage}/results.json" RESUME=1 \
        "${SCRIPTS_DIR}/run_evaluation.sh" "${args[@]}"

    # Import what was driven into the data so far: each tick is marked with the seconds to
    # the run's next infraction (from the results), relabelled by the expert and appended,
    # so training sees the infraction penalty. Runs imported before are skipped (resume).
    if ! is_true "${DRY_RUN}"; then
        [[ -f "${stage}/recorded/index.json" ]] ||
            die "iteration ${i} recorded nothing (${stage}/recorded/index.json missing); see ${stage}/results.json"
        [[ -f "${stage}/results.json" ]] ||
            die "iteration ${i} wrote no results (${stage}/results.json missing); the infractions are unknown"
    fi
    run_or_print "${LANGPROP_CMD[@]}" import-rollout "${stage}/recorded" --results "${stage}/results.json" \
        --work-dir "${WORK_DIR}" --stage "carla-dagger-${i}"

    # Train again, seeded with the best script driven so far.
    seed_script="${stage}/seed_policy.py"
    train=("${LANGPROP_CMD[@]}" train --work-dir "${WORK_DIR}" --dataset "${WORK_DIR}/data"
           --name "carla-dagger-${i}" --seed-script "${seed_script}" --seed "${SEED}")
    if is_true "${DRY_RUN}"; then
        run_or_print "${train[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
        current="${WORK_DIR}/train/carla-dagger-${i}"
        continue
    fi
    "${PYTHON}" - "${current}" "${seed_script}" <<'PY'
import sys
from pathlib import Path
source, target = Path(sys.argv[1]), Path(sys.argv[2])
if source.is_file():
    text = source.read_text()
else:
    from langprop_core.checkpoint import load_checkpoint
    text = load_checkpoint(source, "predict_speed_and_steering").best.source
target.write_text(text)
PY
    "${train[@]}" ${EXTRA[@]+"${EXTRA[@]}"} | tee "${stage}/train.log"
    current="$(sed -n 's/^checkpoint: //p' "${stage}/train.log" | tail -n 1)"
    [[ -n "${current}" ]] || die "training of iteration ${i} printed no checkpoint; see ${stage}/train.log"
done
echo "final checkpoint: ${current}"
