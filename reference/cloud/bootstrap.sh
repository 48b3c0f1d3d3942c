#!/usr/bin/env bash
# shakyo cloud bootstrap: everything the rented instance does, in order.
#
#   tools    a venv with the pinned vastai + kaggle CLIs (so the instance can always destroy itself)
#   install  the pinned commit of this repository, `pip install .[cloud]`
#   data     `kaggle datasets download` (or `competitions download`), retried, checksummed, unzipped
#   prepare  `shakyo prepare` when the data are raw competition records
#   weights  `shakyo weights NAME --to weights` when the plan names an encoder checkpoint
#   train    `shakyo train CONFIG ... RESUME true` per seed, stopped before the deadline
#   evaluate `shakyo evaluate RUN` -> threshold.json
#   publish  model.pth, config.json, history.csv, threshold.json (+ the source) as a Kaggle
#            dataset version: `datasets create` the first time, `datasets version` after
#   finish   (EXIT trap, also after any failure) publish the redacted logs to <dataset>-logs,
#            then `vastai destroy instance $CONTAINER_ID` with the instance's own key
#
# Started by the on-start script that `shakyo cloud launch` renders (reference/cloud/onstart.py),
# which exports the SHAKYO_* values of the plan and clones the repository into $SHAKYO_WORK/src.
# Secrets arrive only as environment variables (KAGGLE_USERNAME/KAGGLE_KEY, WANDB_API_KEY; Vast
# sets CONTAINER_ID/CONTAINER_API_KEY). None is ever put on a command line or printed, and every
# log is redacted before it is published. Each finished step leaves a marker in $WORK/state, so an
# instance that restarts (the on-start runs again) continues where it stopped.
set -uo pipefail

WORK=${SHAKYO_WORK:-/workspace/shakyo}
SRC=$WORK/src
VENV=$WORK/venv
STATE=$WORK/state
LOGS=$WORK/logs
OUT=$WORK/out
RETRY_WAIT=${SHAKYO_RETRY_WAIT:-15}
SECRET_VARS=(KAGGLE_KEY WANDB_API_KEY CONTAINER_API_KEY VAST_API_KEY)
mkdir -p "$STATE" "$LOGS" "$OUT"
cd "$WORK" || exit 1
exec > >(tee -a "$LOGS/bootstrap.log") 2>&1

STEP=start
FAILED=""
RUN_NAMES=()
say() { printf '%s shakyo-bootstrap [%s] %s\n' "$(date -u +%H:%M:%S)" "$STEP" "$*"; }
step() { STEP=$1; say "== $1"; }
done_marker() { [[ -f $STATE/$1 ]]; }
mark() { touch "$STATE/$1"; }

# retry N CMD...: run CMD up to N times, waiting RETRY_WAIT*attempt seconds in between.
retry() {
    local n=$1 i
    shift
    for ((i = 1; i <= n; i++)); do
        "$@" && return 0
        say "attempt $i/$n of '$1 ${2:-} ${3:-}' failed"
        ((i < n)) && sleep $((RETRY_WAIT * i))
    done
    return 1
}

redact() { python3 "$SRC/reference/cloud/redact.py" "${SECRET_VARS[@]}"; }

# unzip_all ZIP DEST: extract ZIP, then every zip inside it into a folder of its name
# (`kaggle datasets create --dir-mode zip` uploads each folder as FOLDER.zip).
unzip_all() {
    python3 - "$1" "$2" <<'PY'
import pathlib, sys, zipfile
dest = pathlib.Path(sys.argv[2])
zipfile.ZipFile(sys.argv[1]).extractall(dest)
for inner in sorted(dest.glob("*.zip")) + sorted(dest.glob("*/*.zip")):
    zipfile.ZipFile(inner).extractall(inner.with_suffix(""))
    inner.unlink()
PY
}

# Vast gives every container CONTAINER_ID and CONTAINER_API_KEY (a key for this instance only).
# The on-start inherits them from PID 1; a shell opened later may not, hence /proc/1/environ.
from_pid1() { tr '\0' '\n' </proc/1/environ 2>/dev/null | sed -n "s/^$1=//p" | head -n 1; }
CONTAINER_ID=${CONTAINER_ID:-$(from_pid1 CONTAINER_ID)}
CONTAINER_API_KEY=${CONTAINER_API_KEY:-$(from_pid1 CONTAINER_API_KEY)}
export CONTAINER_ID CONTAINER_API_KEY

# kaggle_ok CMD...: a kaggle command that also fails when it prints an error but exits 0
# (`datasets create` does that for a logical error, e.g. a slug already in use).
kaggle_ok() {
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    ((rc == 0)) && ! grep -qi 'error:' <<<"$out"
}

# publish_dir DIR REF TITLE MESSAGE: create the Kaggle dataset REF from DIR, or add a version.
publish_dir() {
    local dir=$1 ref=$2 title=$3 message=$4
    REF=$ref TITLE=$title python3 - "$dir/dataset-metadata.json" <<'PY'
import json, os, sys
meta = {"title": os.environ["TITLE"], "id": os.environ["REF"],
        "licenses": [{"name": os.environ.get("SHAKYO_LICENSE", "CC0-1.0")}]}
open(sys.argv[1], "w").write(json.dumps(meta, indent=2) + "\n")
PY
    if kaggle datasets status "$ref" >/dev/null 2>&1; then
        retry 4 kaggle_ok kaggle datasets version -p "$dir" -m "$message" --dir-mode zip -q
    else
        retry 4 kaggle_ok kaggle datasets create -p "$dir" --dir-mode zip -q ||
            retry 4 kaggle_ok kaggle datasets version -p "$dir" -m "$message" --dir-mode zip -q
    fi
}

destroy_self() {
    if [[ -z $CONTAINER_ID || -z $CONTAINER_API_KEY ]]; then
        say "no CONTAINER_ID/CONTAINER_API_KEY: cannot destroy myself; \`shakyo cloud status --watch\` will at the deadline"
        return 1
    fi
    say "destroying instance $CONTAINER_ID (destroy, not stop: a stopped instance still bills its disk)"
    (
        export VAST_API_KEY=$CONTAINER_API_KEY
        # vastai exits 0 even when the call failed; its success line is the only sure sign.
        destroy_once() { vastai destroy instance "$CONTAINER_ID" -y 2>&1 | tee /dev/stderr | grep -q "destroying instance"; }
        retry 6 destroy_once || say "could not confirm the destroy; the watchdog will check at the deadline"
    )
}

# The EXIT trap: publish what we have (redacted), then destroy the instance, whatever happened.
finish() {
    local rc=$?
    trap - EXIT
    [[ -n $FAILED ]] || ((rc == 0)) || FAILED="$STEP failed (exit $rc)"
    STEP=finish
    if [[ -z $FAILED ]]; then say "all steps done"; else say "FAILED: $FAILED"; fi
    sleep 1 # let tee write the last lines
    local pub=$WORK/publish/logs run
    rm -rf "$pub" && mkdir -p "$pub"
    redact <"$LOGS/bootstrap.log" >"$pub/bootstrap.log"
    for run in "${RUN_NAMES[@]}"; do
        [[ -d $OUT/$run ]] || continue
        mkdir -p "$pub/$run"
        for f in config.json history.csv batches.csv summary.json threshold.json; do
            [[ -f $OUT/$run/$f ]] && redact <"$OUT/$run/$f" >"$pub/$run/$f"
        done
        # After a failure the checkpoint goes too: `shakyo cloud launch --resume` continues it.
        if [[ -n $FAILED && -f $OUT/$run/checkpoint.pth ]]; then
            cp "$OUT/$run/checkpoint.pth" "$OUT/$run/model.pth" "$pub/$run/" 2>/dev/null
        fi
    done
    local status=ok
    [[ -z $FAILED ]] || status="FAILED: $FAILED"
    if [[ -n ${KAGGLE_KEY:-} ]] && command -v kaggle >/dev/null; then
        publish_dir "$pub" "$SHAKYO_LOGS_DATASET" "${SHAKYO_PUBLISH_TITLE:0:40} logs" \
            "$SHAKYO_PLAN $SHAKYO_REF: $status" || say "could not publish the logs"
    fi
    destroy_self
    exit "$rc"
}
trap finish EXIT
trap 'FAILED="terminated by a signal"; exit 143' TERM INT HUP

read -r -a SEEDS <<<"${SHAKYO_SEEDS:-}"
read -r -a RUN_NAMES <<<"${SHAKYO_RUNS:-}"
eval "OVERRIDES=(${SHAKYO_OVERRIDES:-})"
say "plan $SHAKYO_PLAN, commit $SHAKYO_REF, instance ${CONTAINER_ID:-?}, deadline $(date -u -d "@$SHAKYO_DEADLINE" +%FT%TZ 2>/dev/null || echo "$SHAKYO_DEADLINE")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || say "nvidia-smi failed"

step tools
if ! done_marker tools; then
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" || exit 1
    retry 3 "$VENV/bin/pip" install -q $SHAKYO_PIP_TOOLS || exit 1
    mark tools
fi
export PATH=$VENV/bin:$PATH

step install
if ! done_marker "install-$SHAKYO_REF"; then
    retry 3 pip install -q "$SRC[cloud]" || exit 1
    mark "install-$SHAKYO_REF"
fi

# download_checked KIND REF DIR: one download of the archive, its SHA-256 and zip CRCs checked.
download_checked() {
    local kind=$1 ref=$2 dir=$3 zip
    rm -rf "$dir" && mkdir -p "$dir"
    if [[ $kind == dataset ]]; then
        kaggle datasets download -d "$ref" -p "$dir" -q || return 1
        zip=$dir/${ref#*/}.zip
    else
        kaggle competitions download -c "$ref" -p "$dir" -q || return 1
        zip=$dir/$ref.zip
    fi
    [[ -f $zip ]] || { say "no $zip after the download"; return 1; }
    if [[ -n ${SHAKYO_DATA_SHA256:-} && $ref == "$SHAKYO_DATA_REF" ]]; then
        local got
        got=$(sha256sum "$zip" | cut -d' ' -f1)
        [[ $got == "$SHAKYO_DATA_SHA256" ]] || { say "sha256 $got, the plan says $SHAKYO_DATA_SHA256"; return 1; }
    fi
    python3 -m zipfile -t "$zip" >/dev/null || { say "$zip fails its CRC check"; return 1; }
}

step data
if ! done_marker data; then
    retry 5 download_checked "$SHAKYO_DATA_SOURCE" "$SHAKYO_DATA_REF" "$WORK/download" || exit 1
    rm -rf "$WORK/data" && unzip_all "$WORK/download"/*.zip "$WORK/data" || exit 1
    rm -rf "$WORK/download"
    mark data
fi

step prepare
if [[ $SHAKYO_DATA_SOURCE == dataset ]]; then
    TILES=$(dirname "$(find "$WORK/data" -maxdepth 4 -type d -name train_adj2 | sort | head -n 1)")
    [[ -d $TILES/val_adj2 ]] || { FAILED="no train_adj2/ and val_adj2/ in dataset $SHAKYO_DATA_REF"; exit 2; }
else
    TILES=$WORK/tiles
    if ! done_marker prepare; then
        RAW=$(dirname "$(find "$WORK/data" -maxdepth 4 -type d -name validation | sort | head -n 1)")
        shakyo prepare "$RAW" --out "$TILES" --labels "${SHAKYO_LABELS:-hard}" || exit 1
        mark prepare
    fi
fi
say "tiles: $TILES"

if [[ -n ${SHAKYO_RESUME_FROM:-} ]] && ! done_marker resume; then
    step resume
    if retry 3 download_checked dataset "$SHAKYO_RESUME_FROM" "$WORK/download"; then
        rm -rf "$WORK/resume" && unzip_all "$WORK/download"/*.zip "$WORK/resume" &&
            for run in "${RUN_NAMES[@]}"; do
                [[ -d $WORK/resume/$run ]] && mkdir -p "$OUT/$run" && cp -r "$WORK/resume/$run"/. "$OUT/$run/"
            done
        say "checkpoints from $SHAKYO_RESUME_FROM: $(ls "$OUT"/*/checkpoint.pth 2>/dev/null | wc -l)"
    else
        say "no checkpoint to resume from $SHAKYO_RESUME_FROM; training from the start"
    fi
    mark resume
fi

if [[ -n ${SHAKYO_WEIGHTS:-} ]]; then
    step weights
    retry 3 shakyo weights "$SHAKYO_WEIGHTS" --to weights || exit 1
fi

step train
for i in "${!SEEDS[@]}"; do
    budget=$((SHAKYO_DEADLINE - $(date +%s) - ${SHAKYO_MARGIN:-1200}))
    if ((budget <= 0)); then
        FAILED="deadline: no time left to train seed ${SEEDS[$i]}"
        exit 3
    fi
    say "seed ${SEEDS[$i]} -> $OUT/${RUN_NAMES[$i]} (at most ${budget}s)"
    timeout --kill-after=120 "$budget" shakyo train "$SRC/$SHAKYO_CONFIG" "${OVERRIDES[@]}" \
        SEED "${SEEDS[$i]}" FNAME "${RUN_NAMES[$i]}" PATH "$TILES" OUT "$OUT" RESUME true
    rc=$?
    if ((rc == 124 || rc == 137)); then
        FAILED="deadline: training of seed ${SEEDS[$i]} stopped (checkpoint published for --resume)"
        exit 3
    fi
    ((rc == 0)) || exit "$rc"
done

step evaluate
for run in "${RUN_NAMES[@]}"; do
    shakyo evaluate "$OUT/$run" || exit 1
done

step publish
if ! done_marker "published-$SHAKYO_REF"; then
    pub=$WORK/publish/model
    rm -rf "$pub" && mkdir -p "$pub"
    for run in "${RUN_NAMES[@]}"; do
        mkdir -p "$pub/$run"
        cp "$OUT/$run"/{model.pth,config.json,history.csv,threshold.json} "$pub/$run/" || exit 1
        for f in summary.json dice_curve.csv; do
            [[ -f $OUT/$run/$f ]] && cp "$OUT/$run/$f" "$pub/$run/"
        done
    done
    # The code that made the model, for the Kaggle notebook (which has no internet).
    git -C "$SRC" archive --format=zip -o "$pub/shakyo-src.zip" "$SHAKYO_REF" || exit 1
    publish_dir "$pub" "$SHAKYO_PUBLISH" "$SHAKYO_PUBLISH_TITLE" "$SHAKYO_PLAN $SHAKYO_REF seeds ${SEEDS[*]}" || exit 1
    mark "published-$SHAKYO_REF"
fi
say "model published to https://www.kaggle.com/datasets/$SHAKYO_PUBLISH"
exit 0
