#!/usr/bin/env bash
# The GPU sprint (issue 30): one command that proves resm's GPU path and pretrains two RNA
# backbones, writing everything worth bringing back into OUTDIR.
#
#   bash experiments/gpu_sprint.sh OUTDIR                      # on a machine with one CUDA GPU
#   RESM_SPRINT_DRY=1 bash experiments/gpu_sprint.sh OUTDIR    # the same path on the CPU, tiny
#
# Before it, on a machine with network: python experiments/gpu_sprint_prepare.py (wheels into
# .whl/gpu_sprint, data into .sprint/data; it prints the device call to make).
#
# Stages, each under a hard `timeout`; a failed stage is recorded and the next ones still run:
#   env          python, torch, CUDA, GPU
#   install      resm's missing dependencies from the carried wheels (pip --no-index)
#   checks       the gpu-marked tests via experiments/gpu_checks.py -> OUTDIR/gpu.md
#   protein      a protein checkpoint: configs/pretrain/sprint_protein_gpu.yaml, 35 s of training
#                (skipped when RESM_SPRINT_PROTEIN names a fair-esm .pt of the same architecture)
#   rna_protein  continued pretraining on mapped Rfam from that protein checkpoint, 80 s
#   rna_random   the same from random initialisation, 80 s
#                (configs/pretrain/sprint_rna_gpu.yaml: ESM-2 t6, DeepSpeed ZeRO-2, bf16)
#   export       after each run: its ZeRO checkpoint -> OUTDIR/<run>.pt, fair-esm, fp16, <= 16 MiB
# The budgets shrink to what is left before RESM_SPRINT_DEADLINE (480 s after the start), the
# two RNA arms always equal; with more time, raise it (and the budgets) together. OUTDIR gets summary.md
# (stages, tokens/s, validation curves, export sizes), gpu.md, the .pt files and logs.tar.gz
# (stage logs, run logs and configs), rewritten after every stage, so a run cut short still
# brings back what it finished. Run folders and checkpoints stay in RESM_SPRINT_WORK (default
# OUTDIR/../<name>.work).
#
# Exit status: 1 if any stage failed or timed out (skipped ones do not count), else 0.
#
# Settings (environment): RESM_SPRINT_DRY=1 (CPU, tiny architecture, 4 steps a run: the suite's
# dry run), RESM_SPRINT_STAGES (comma list of the stages above; default all),
# RESM_SPRINT_PYTHON (python3), RESM_SPRINT_WHEELS (.whl/gpu_sprint), RESM_SPRINT_DATA
# (.sprint/data), RESM_SPRINT_WORK, RESM_SPRINT_PROTEIN (a protein .pt to start from instead of
# the protein stage, e.g. protein.pt of an earlier sprint), RESM_SPRINT_ARCH (an architecture
# preset instead of esm2_t6_8M_UR50D, matching RESM_SPRINT_PROTEIN's), RESM_SPRINT_RNA_SECONDS (80),
# RESM_SPRINT_PROTEIN_SECONDS (35), RESM_SPRINT_DEADLINE (480).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: experiments/gpu_sprint.sh OUTDIR" >&2
    exit 2
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
WORK=${RESM_SPRINT_WORK:-$OUT/../$(basename "$OUT").work}
mkdir -p "$WORK/logs" "$WORK/runs"
WORK=$(cd "$WORK" && pwd)
PY=${RESM_SPRINT_PYTHON:-python3}
DRY=${RESM_SPRINT_DRY:-0}
WHEELS=${RESM_SPRINT_WHEELS:-$REPO/.whl/gpu_sprint}
STAGES=${RESM_SPRINT_STAGES:-env,install,checks,protein,rna_protein,rna_random,export}
START=$(date +%s)
DEADLINE=${RESM_SPRINT_DEADLINE:-480}           # seconds: the whole sprint in 8 minutes
RNA_SECONDS=${RESM_SPRINT_RNA_SECONDS:-80}      # training budget of each RNA arm
PROTEIN_SECONDS=${RESM_SPRINT_PROTEIN_SECONDS:-35}
OVERHEAD=35                                     # per pretraining: start-up, data, validation, saving
EXPORT=15                                       # per export
export RESM_DATA=${RESM_SPRINT_DATA:-$REPO/.sprint/data}
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
cd "$REPO"
: >"$WORK/stages.tsv"

if [ "$DRY" = 1 ]; then  # the same commands, sized for seconds on one CPU core
    DEVICE=cpu
    SIZE=(model.arch=tiny data.max_length=64 data.tokens_per_batch=1024 data.bucket_size=200 train.max_steps=4
          train.log_every=1 train.val_every=2 validation.max_records=20 optim.warmup_steps=1 data.val_fraction=0.2)
    export OMP_NUM_THREADS=1
    DEADLINE=${RESM_SPRINT_DEADLINE:-3600}  # a busy CPU must not shrink the dry run's stages
    # On the CPU DeepSpeed's first start compiles its shared-memory op (more than 100 s on a busy
    # machine; CUDA has none): a stage killed mid-compile leaves torch's build lock behind, and
    # every later DeepSpeed start on the machine waits on it for ever
    OVERHEAD=240
else
    DEVICE=cuda
    SIZE=()
fi
if [ -n "${RESM_SPRINT_ARCH:-}" ]; then  # the protein stage and the random arm; rna_protein takes its checkpoint's
    SIZE+=("model.arch=$RESM_SPRINT_ARCH")
fi

wanted() { [[ ",$STAGES," == *",$1,"* || ($1 == export_* && ",$STAGES," == *",export,"*) ]]; }

record() {  # stage status seconds note
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/stages.tsv"
    echo "== $1: $2 (${3} s) $4"
}

summarise() {
    timeout 120 "$PY" "$REPO/experiments/gpu_sprint_summary.py" --work "$WORK" --out "$OUT" \
        || echo "== summary failed (exit $?)"
}

# stage NAME LIMIT_S CMD...: run CMD under a hard timeout, log to logs/NAME.log, record it
stage() {
    local name=$1 limit=$2 rc t0 status note=""
    shift 2
    if ! wanted "$name"; then
        return 0
    fi
    echo "== $name (limit ${limit} s): $(printf '%s' "$*" | head -n 1 | cut -c1-400)"
    t0=$(date +%s)
    set +e
    timeout --kill-after=15 "$limit" "$@" >"$WORK/logs/$name.log" 2>&1
    rc=$?
    set -e
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout; note="killed after ${limit} s" ;;
        3) status=skipped; note=$(tail -n 1 "$WORK/logs/$name.log") ;;
        *) status=failed; note="exit $rc: $(grep -v '^\s*$' "$WORK/logs/$name.log" | tail -n 1 | cut -c1-200)" ;;
    esac
    record "$name" "$status" "$(($(date +%s) - t0))" "$note"
    tail -n 5 "$WORK/logs/$name.log" | sed 's/^/   | /'
    summarise
}

skip() {  # NAME WHY
    if wanted "$1"; then
        record "$1" skipped 0 "$2"
        summarise
    fi
}

left() { echo $((DEADLINE - ($(date +%s) - START))); }

minutes() { printf '%d.%04d' $(($1 / 60)) $((($1 % 60) * 10000 / 60)); }

pretrain() {  # NAME CONFIG SECONDS OVERRIDES...: a wall-clock budget of SECONDS of training
    local name=$1 config=$2 secs=$3 limit
    shift 3
    limit=$((secs + OVERHEAD + 30))
    [ "$limit" -le "$(left)" ] || limit=$(($(left) > 10 ? $(left) : 10))
    stage "$name" "$limit" "$PY" -m resm pretrain --config "$config" \
        "train.out_dir=$WORK/runs/$name" "train.device=$DEVICE" "train.max_minutes=$(minutes "$secs")" \
        ${SIZE[@]+"${SIZE[@]}"} "$@"
}

export_one() {  # RUN: the run's newest (ZeRO) checkpoint -> OUT/RUN.pt, fp16, at most 16 MiB
    local run=$1 size
    if ! "$PY" -m resm export "$WORK/runs/$run" --out "$OUT/$run.pt" --dtype fp16 --any-name; then
        # our own run folder, just written: the refusal above names what the allow-list lacks
        echo "refused or failed as above; again with --trust-checkpoint"
        "$PY" -m resm export "$WORK/runs/$run" --out "$OUT/$run.pt" --dtype fp16 --any-name --trust-checkpoint
        echo "exported only with --trust-checkpoint"
    fi
    size=$(stat -c %s "$OUT/$run.pt")
    echo "$run.pt: $size bytes"
    if [ "$size" -gt $((16 * 1024 * 1024)) ]; then
        echo "$run.pt is over 16 MiB: it will not come back"
        return 1
    fi
}

export_run() {  # RUN
    if ! wanted export; then
        return 0
    fi
    if [ ! -d "$WORK/runs/$1/checkpoints" ]; then
        record "export_$1" skipped 0 "no checkpoint of $1"
        return 0
    fi
    local limit=$(($(left) > 150 ? 150 : ($(left) > 40 ? $(left) : 40)))
    stage "export_$1" "$limit" env PY="$PY" WORK="$WORK" OUT="$OUT" bash -c "set -euo pipefail; $(declare -f export_one); export_one $1"
}

# ---------------------------------------------------------------------------- env, install, checks
stage env 60 "$PY" experiments/gpu_sprint_summary.py --env "$WORK/env.json"

if [ "$DRY" = 1 ]; then  # the CPU has everything (and cannot install 3.12 wheels): check the wheels
    if [ -d "$WHEELS" ]; then
        stage install 120 "$PY" experiments/gpu_sprint_install.py --wheels "$WHEELS" --check
    else
        stage install 120 "$PY" experiments/gpu_sprint_install.py --wheels "$WHEELS" --no-import-probe
    fi
else
    stage install 180 "$PY" experiments/gpu_sprint_install.py --wheels "$WHEELS"
fi

stage checks 200 "$PY" experiments/gpu_checks.py --out "$OUT/gpu.md" --log "$WORK/logs/checks_pytest.log" --limit 180

# ---------------------------------------------------------------------------- pretraining
# Seconds left decide the budgets: the protein stage at most a third of the training time left
# (skipped under 15 s), then both RNA arms the same share of what remains (skipped under 20 s).
PROTEIN=${RESM_SPRINT_PROTEIN:-}
RNA_S=$RNA_SECONDS
if [ -z "$PROTEIN" ]; then
    PROTEIN=$WORK/runs/protein/model.pt
    if wanted protein; then
        P_S=$((($(left) - 3 * (OVERHEAD + EXPORT)) / 3))  # short of time, all three shrink
        [ "$P_S" -le "$PROTEIN_SECONDS" ] || P_S=$PROTEIN_SECONDS
        if [ "$P_S" -ge 15 ]; then
            pretrain protein configs/pretrain/sprint_protein_gpu.yaml "$P_S"
            export_run protein
        else
            skip protein "only $(left) s left"
        fi
    fi
else
    skip protein "RESM_SPRINT_PROTEIN=$PROTEIN given"
fi
ARMS=$(( ($(wanted rna_protein && [ -f "$PROTEIN" ] && echo 1 || echo 0)) + ($(wanted rna_random && echo 1 || echo 0)) ))
if [ "$ARMS" -gt 0 ]; then
    FIT=$((($(left) - ARMS * (OVERHEAD + EXPORT)) / ARMS))
    [ "$FIT" -ge "$RNA_S" ] || RNA_S=$FIT
    echo "== RNA arms: $RNA_S s of training each ($(left) s left)"
fi
if [ "$RNA_S" -lt 20 ]; then
    skip rna_protein "only $(left) s left"
    skip rna_random "only $(left) s left"
else
    if [ -f "$PROTEIN" ]; then
        pretrain rna_protein configs/pretrain/sprint_rna_gpu.yaml "$RNA_S" model.arch=null "model.init=$PROTEIN"
        export_run rna_protein
    else
        skip rna_protein "no protein checkpoint ($PROTEIN)"
    fi
    pretrain rna_random configs/pretrain/sprint_rna_gpu.yaml "$RNA_S"
    export_run rna_random
fi
echo "== done in $(($(date +%s) - START)) s: $OUT/summary.md"
cat "$OUT/summary.md" 2>/dev/null || true
BAD=$(awk -F'\t' '$2 == "failed" || $2 == "timeout" {print $1}' "$WORK/stages.tsv" | paste -sd, -)
if [ -n "$BAD" ]; then
    echo "== failed or timed out: $BAD" >&2
    exit 1
fi
