#!/bin/sh
# Runs one EdgeRazor rank per Slurm task: maps Slurm's variables to the torchrun-style ones that
# edgerazor::distributed reads, then execs the command.
#
#   #SBATCH --nodes=2 --ntasks-per-node=8 --gpus-per-node=8
#   srun scripts/slurm_launch.sh edgerazor-train configs/x.yaml
#
#   RANK             <- SLURM_PROCID
#   WORLD_SIZE       <- SLURM_NTASKS
#   LOCAL_RANK       <- SLURM_LOCALID
#   LOCAL_WORLD_SIZE <- this node's entry of SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE ("8(x2)")
#   MASTER_ADDR      <- first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST (scontrol when present)
#   MASTER_PORT      <- 20000 + SLURM_JOB_ID % 20000 (two jobs sharing a node get different ports)
# MASTER_ADDR / MASTER_PORT already set in the environment win.
set -eu

if [ "$#" -eq 0 ]; then
  echo "usage: srun $0 COMMAND [ARGS...]" >&2
  exit 2
fi
if [ -z "${SLURM_PROCID:-}" ] || [ -z "${SLURM_NTASKS:-}" ]; then
  echo "slurm_launch.sh: SLURM_PROCID/SLURM_NTASKS are not set; run it under srun" >&2
  exit 2
fi

RANK=$SLURM_PROCID
WORLD_SIZE=$SLURM_NTASKS
LOCAL_RANK=${SLURM_LOCALID:-0}

# "2(x3),1" -> the count of node SLURM_NODEID (0-based).
tasks_per_node=${SLURM_STEP_TASKS_PER_NODE:-${SLURM_TASKS_PER_NODE:-}}
if [ -n "$tasks_per_node" ]; then
  LOCAL_WORLD_SIZE=$(printf '%s\n' "$tasks_per_node" | awk -v node="${SLURM_NODEID:-0}" -F, '{
    n = 0
    for (i = 1; i <= NF; i++) {
      count = $i; repeat = 1
      if (match($i, /\(x[0-9]+\)/)) { count = substr($i, 1, RSTART - 1); repeat = substr($i, RSTART + 2, RLENGTH - 3) }
      for (j = 0; j < repeat; j++) { if (n == node) { print count; exit } n++ }
    }
  }')
fi
LOCAL_WORLD_SIZE=${LOCAL_WORLD_SIZE:-$WORLD_SIZE}

if [ -z "${MASTER_ADDR:-}" ]; then
  nodelist=${SLURM_STEP_NODELIST:-${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}}
  if [ -z "$nodelist" ]; then
    echo "slurm_launch.sh: no SLURM_JOB_NODELIST; set MASTER_ADDR" >&2
    exit 2
  fi
  if command -v scontrol >/dev/null 2>&1; then
    MASTER_ADDR=$(scontrol show hostnames "$nodelist" | head -n 1)
  else  # "gpu-[01-03,07],cpu5" -> "gpu-01"
    MASTER_ADDR=$(printf '%s\n' "$nodelist" | sed -E 's/^([^,[]*)(\[([^],-]*)[^]]*\])?.*/\1\3/')
  fi
fi
if [ -z "${MASTER_PORT:-}" ]; then
  MASTER_PORT=$((20000 + ${SLURM_JOB_ID:-0} % 20000))
fi

export RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT
exec "$@"
