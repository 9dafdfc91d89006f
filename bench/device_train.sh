#!/usr/bin/env bash
# The shipped default's recipe (config/train/motion_prior.yaml, issue #12) in ONE call on a lent GPU:
# autoencoders continued from checkpoints/motion_mix_ae, the latent cache with the motion prior (OpenCV is on
# the device image), the single-modality models, the joint model from them, the fp16 bundle; the bundle, the
# autoencoder EMAs and the log go to $OUT (files come back from at most 2 folders down, 16 MiB each).
#
# Here, first (the data travels as one training pack, 27 MiB beside the 30 MiB repository; docs/training.md):
#   syncvp make-mix --config motion_prior -j 2
#   syncvp pack-data --config motion_prior --out runs/pack/motion_prior.npz
# Then through the device tool:  run(command="bash bench/device_train.sh", carry=["runs/pack"], timeout_s=600)
# On the CPU: SMOKE=1 OUT=/tmp/out bash bench/device_train.sh packs the synthetic test folder and runs every
# stage for 2 steps.
#
# Steps and batch sizes are set for an H100 and a 10-minute call; they were not measured on a GPU (none was
# lent when this was written). Every stage checkpoints every 60 s, so a stage cut short still leaves its
# newest EMA weights, and the bundle step uses whatever exists.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
RUN=${RUN:-/tmp/syncvp_device_run}
PACK=${PACK:-runs/pack/motion_prior.npz}
SMOKE=${SMOKE:-0}
mkdir -p "$RUN" "$OUT"
log() { echo "[device_train $(date +%H:%M:%S)] $*" | tee -a "$OUT/device_train.log"; }
if [ "$SMOKE" = 1 ]; then
  AE_STEPS=2; SINGLE_STEPS=2; JOINT_STEPS=2; AE_BATCH=2; BATCH=2
  PACK=$RUN/smoke_pack.npz
  $PY -c "from syncvp_core.training.synthetic import write_synthetic_folder as w; w('$RUN/seq', n_frames=40)"
  $PY -m syncvp_core.cli pack-data --config motion_prior --out "$PACK" "data.folders=[\"$RUN/seq\"]" \
      "data.sim_mix=[]" progress=false | tee -a "$OUT/device_train.log"
else
  AE_STEPS=${AE_STEPS:-600}; SINGLE_STEPS=${SINGLE_STEPS:-1500}; JOINT_STEPS=${JOINT_STEPS:-4000}
  AE_BATCH=${AE_BATCH:-32}; BATCH=${BATCH:-128}
fi
[ -f "$PACK" ] || { log "no training pack at $PACK (see the top of this script)"; exit 2; }
# The pack replaces folders, data sets and the simulator mix; the model and its overrides are the config's.
COMMON=(run_dir="$RUN" "data.pack=$PACK" progress=false device=auto threads=0)
TRAIN=($PY -m syncvp_core.training.cli --config motion_prior)
log "torch $($PY -c 'import torch; print(torch.__version__, torch.cuda.is_available())'), pack $PACK"

log "ae: $AE_STEPS steps x $AE_BATCH per modality"
"${TRAIN[@]}" --stage ae "${COMMON[@]}" ae.steps="$AE_STEPS" ae.batch_size="$AE_BATCH" ae.ckpt_every=500 \
    ae.ckpt_every_s=60 ae.sample_every=0 2>&1 | tail -n 4 | tee -a "$OUT/device_train.log"
log "latent cache (with the motion prior)"
$PY -m syncvp_core.cli cache-latents --config motion_prior "${COMMON[@]}" 2>&1 | tail -n 2 | tee -a "$OUT/device_train.log"
log "single: $SINGLE_STEPS steps x $BATCH per modality"
"${TRAIN[@]}" --stage single "${COMMON[@]}" single.steps="$SINGLE_STEPS" single.batch_size="$BATCH" \
    single.ckpt_every=500 single.ckpt_every_s=60 2>&1 | tail -n 4 | tee -a "$OUT/device_train.log"
log "joint: $JOINT_STEPS steps x $BATCH"
"${TRAIN[@]}" --stage joint "${COMMON[@]}" joint.steps="$JOINT_STEPS" joint.batch_size="$BATCH" \
    joint.ckpt_every=500 joint.ckpt_every_s=60 joint.sample_every=0 2>&1 | tail -n 2 | tee -a "$OUT/device_train.log"

# Bundle (fp16, < 25 MB); evaluate it here afterwards with bench/sampler_choice.py (the choice) and
# `syncvp eval-heldout --checkpoint ... --config motion_prior` (reported only).
$PY -m syncvp_core.training.ship --config motion_prior --out "$OUT/syncvp_tiny.safetensors" --fp16 "${COMMON[@]}" \
    2>&1 | tail -n 1 | tee -a "$OUT/device_train.log"
mkdir -p "$OUT/ae"
for m in rgb depth; do cp "$RUN/ae_$m/ema.safetensors" "$OUT/ae/ae_${m}_ema.safetensors"; cp "$RUN/ae_$m/ema.json" "$OUT/ae/ae_${m}_ema.json"; done
log "done"
