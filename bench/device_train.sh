#!/usr/bin/env bash
# The anchored default recipe in ONE call on a lent GPU (issue #12): continue the committed anchored
# autoencoders, measure the latent scale, cache latents, train the joint model, bundle, and write the bundle
# and its logs to $OUT (files come back from at most 2 folders down, 16 MiB each).
#
# Here, first (the training data must travel inside the 64 MiB working tree, so it is packed at 64x64):
#   syncvp data from-folder ../shared/data/real-rgbd/tum_freiburg1_xyz ../shared/data/real-rgbd/iclnuim_living_room_traj2 \
#       --out runs/pack/real64 --size 64 64 --val-tail 0.2          # 33 MB; the last 20 % stays held out
# Then through the device tool:  run(command="bash bench/device_train.sh", carry=["runs/pack/real64"], timeout_s=600)
# On the CPU the same script runs with SMOKE=1 (2 steps per stage; ~3 min here, most of it the latent cache).
#
# Budgets (seconds of training per stage) are set for an H100 and a 10-minute call; they were not measured
# on a GPU yet (no GPU was lent when this was written). Every stage checkpoints every 60 s, so a stage cut
# short still leaves its newest EMA weights, and the bundle step uses whatever exists.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
RUN=${RUN:-/tmp/syncvp_device_run}
PACK=${PACK:-runs/pack/real64}
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then AE_STEPS=2; SINGLE_STEPS=2; JOINT_STEPS=2; AE_BATCH=2; JOINT_BATCH=2; else
  AE_STEPS=${AE_STEPS:-3000}; SINGLE_STEPS=${SINGLE_STEPS:-1500}; JOINT_STEPS=${JOINT_STEPS:-6000}
  AE_BATCH=${AE_BATCH:-32}; JOINT_BATCH=${JOINT_BATCH:-128}; fi
# The denoiser's parameterisation, the joint model's timesteps with both modalities present
# (joint.full_t_max) and the shipped sampler (start, start_t, steps): the measured choices of MODEL_CARD.md.
PREDICTION=${PREDICTION:-x0}; FULL_T_MAX=${FULL_T_MAX:-0}
SAMPLER_START=${SAMPLER_START:-noise}; SAMPLER_T=${SAMPLER_T:-999}; SAMPLER_STEPS=${SAMPLER_STEPS:-1}
mkdir -p "$RUN" "$OUT"
log() { echo "[device_train $(date +%H:%M:%S)] $*" | tee -a "$OUT/device_train.log"; }
COMMON=(run_dir="$RUN" "data.folders=[]" "data.datasets=[\"$PACK\"]" progress=false device=auto threads=0)
# A smoke run caches one clip phase only (the full cache is 5,132 clips, ~20 min on a CPU).
if [ "$SMOKE" = 1 ]; then COMMON+=(data.start_step=3 data.cache_hflip=false data.reverse_time=false); fi
log "torch $($PY -c 'import torch; print(torch.__version__, torch.cuda.is_available())')"

# 1. Autoencoders: warm start from the committed EMA weights (checkpoints/anchored_tiny_ae, 1000 + 1500 steps).
for m in rgb depth; do
  log "ae $m: $AE_STEPS steps x $AE_BATCH"
  $PY -m syncvp_core.training.cli --config anchored_tiny --stage ae --modality "$m" "${COMMON[@]}" \
      "ae.init=checkpoints/anchored_tiny_ae/ae_{modality}/ema.safetensors" ae.steps="$AE_STEPS" \
      ae.batch_size="$AE_BATCH" ae.warmup_steps=20 ae.ckpt_every=500 ae.ckpt_every_s=60 ae.sample_every=0 \
      2>&1 | tail -n 3 | tee -a "$OUT/device_train.log"
done

# 2. Latent scale (one factor for both modalities: mean second moment -> 1).
$PY bench/anchor_ceiling.py --latent-stats "$RUN" --config anchored_tiny --override "data.folders=[]" \
    --override "data.datasets=[\"$PACK\"]" > "$OUT/latent_stats.json"
S=$($PY -c "import json;d=json.load(open('$OUT/latent_stats.json'));print(round(((d['rgb']['second_moment']+d['depth']['second_moment'])/2)**-0.5,2))")
log "latent_scale $S"
OV="model_overrides=[\"autoencoder.latent_scale=$S\",\"diffusion.prediction=$PREDICTION\"]"

# 3. Latent cache, the single-modality models (measured to help: MODEL_CARD.md), the joint model from them.
$PY -m syncvp_core.cli cache-latents --config anchored_tiny "${COMMON[@]}" "$OV" 2>&1 | tail -n 2 | tee -a "$OUT/device_train.log"
log "single: $SINGLE_STEPS steps x $JOINT_BATCH per modality"
$PY -m syncvp_core.training.cli --config anchored_tiny --stage single "${COMMON[@]}" "$OV" single.steps="$SINGLE_STEPS" \
    single.batch_size="$JOINT_BATCH" single.ema_decay=0.995 single.lr=0.0004 single.ckpt_every=500 single.ckpt_every_s=60 \
    2>&1 | tail -n 3 | tee -a "$OUT/device_train.log"
log "joint: $JOINT_STEPS steps x $JOINT_BATCH"
$PY -m syncvp_core.training.cli --config anchored_tiny --stage joint "${COMMON[@]}" "$OV" joint.init=singles \
    joint.full_t_max="$FULL_T_MAX" joint.steps="$JOINT_STEPS" joint.batch_size="$JOINT_BATCH" joint.ckpt_every=500 joint.ckpt_every_s=60 \
    joint.sample_every=0 2>&1 | tail -n 3 | tee -a "$OUT/device_train.log"

# 4. Bundle (fp16, < 25 MB) with the sampler of the shipped checkpoint; evaluate it here afterwards with
#    `syncvp eval-heldout --checkpoint ... --config anchored_tiny` and bench/forecast_ratios.py.
$PY -m syncvp_core.training.ship --config anchored_tiny --out "$OUT/syncvp_tiny_anchored.safetensors" --fp16 \
    "${COMMON[@]}" "model_overrides=[\"autoencoder.latent_scale=$S\",\"diffusion.prediction=$PREDICTION\",\"sampler.start=$SAMPLER_START\",\"sampler.start_t=$SAMPLER_T\",\"sampler.steps=$SAMPLER_STEPS\"]" \
    2>&1 | tail -n 1 | tee -a "$OUT/device_train.log"
mkdir -p "$OUT/ae"
for m in rgb depth; do cp "$RUN/ae_$m/ema.safetensors" "$OUT/ae/ae_${m}_ema.safetensors"; cp "$RUN/ae_$m/ema.json" "$OUT/ae/ae_${m}_ema.json"; done
log "done"
