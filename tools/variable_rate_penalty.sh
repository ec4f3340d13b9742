#!/usr/bin/env bash
# The variable-rate model's penalty against rungs trained for one rate each (bench/variable_rate_penalty.py
# measures it): from the same start (by default the shipped mbt2018-mean), one fine-tuning run per
# rung at a single quality (model.quality_range=(q,q)), and a control run of the same length that
# keeps drawing qualities over the whole range. Every run has the same data order, steps and
# learning rates, so the rungs differ from the control only in what they specialise for.
#
#   bash tools/variable_rate_penalty.sh RUNS_DIR TRAIN_FOLDER [STEPS] [QUALITIES]
#
# e.g. bash tools/variable_rate_penalty.sh /work/runs/penalty /work/runs/photos/train 800 "1 3 5 8"
# writes RUNS_DIR/variable and RUNS_DIR/q1 .. (resumable: an existing workdir resumes).
# START=NAME_OR_WORKDIR changes the start, RATE_BALANCE=0.6 the objective's quality weights,
# MODULATION=False leaves out the conditional decoder (model.synthesis_modulation; needed with a start
# that has none -- the runs get it otherwise, identity tables added, as the shipped model has it),
# MARGIN=0.5 its qualities drawn so that the end rungs train like the others (model.quality_margin).
# Then: python bench/variable_rate_penalty.py --variable RUNS_DIR/variable --rung 1=RUNS_DIR/q1 ...
set -eu
cd "$(dirname "$0")/.."
RUNS="$1"; TRAIN="$2"; STEPS="${3:-800}"; QUALITIES="${4-1 3 5 8}"  # "" trains the variable-rate run only
START="${START:-mbt2018-mean}"
BALANCE="${RATE_BALANCE:-0}"  # model.rate_balance of every run (a single rung is unaffected by it)
MODULATION="${MODULATION:-True}"  # every run's (at one quality the tables are fixed affine maps)
MARGIN="${MARGIN:-0}"  # the variable-rate run's (a single rung draws its one quality whatever the margin)
PY="${PYTHON:-python3}"
mkdir -p "$RUNS"
run() {  # NAME LOW HIGH
  echo "== $1: qualities $2..$3, $STEPS steps from $START"
  "$PY" train.py --config configs/mbt2018_mean_from_factorized.py --workdir "$RUNS/$1" \
    --config.data.train="folder:$TRAIN" --config.init_from="$START" \
    --config.model.init_transforms_from= --config.model.freeze_transforms_steps=0 \
    --config.model.quality_range="($2, $3)" --config.model.rate_balance="$BALANCE" \
    --config.model.synthesis_modulation="$MODULATION" --config.model.quality_margin="$MARGIN" \
    --config.num_steps="$STEPS" --config.lr_decay_at=0.5 \
    --config.checkpoint_every=200
}
run variable 1.0 8.0
for q in $QUALITIES; do run "q$q" "$q" "$q"; done
