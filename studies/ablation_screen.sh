#!/usr/bin/env bash
# Screen each option on the hardest leave-one-user-out folds (one seed, train.py cv=users), then report:
#   USERS=[U02,U04,U08] OUT=outputs/ablation bash studies/ablation_screen.sh     (make ablation)
set -euo pipefail
USERS=${USERS:-"[U02,U04,U08]"}
OUT=${OUT:-outputs/ablation}
PY=${PY:-python}
QUIET="console=quiet logger=none log_model=false"
AUGMENT="data.augment.rotate_deg=30 data.augment.scale=0.2 data.augment.time_warp=0.2 data.augment.jitter=0.3"
declare -A OPTIONS=(
  [baseline]=""
  [rotate15]="data.augment.rotate_deg=15"
  [rotate30]="data.augment.rotate_deg=30"
  [scale]="data.augment.scale=0.2"
  [time_warp]="data.augment.time_warp=0.2"
  [jitter]="data.augment.jitter=0.3"
  [all_augment]="${AUGMENT}"
  [bidirectional]="model.net.bidirectional=true"
  [hidden128_layers2]="model.net.hidden=128 model.net.layers=2 model.net.dropout=0.2"
  [adamw]="model.optimizer._target_=torch.optim.AdamW model.optimizer.weight_decay=0.01"
  [cosine]="model.scheduler={_target_:torch.optim.lr_scheduler.CosineAnnealingLR,_partial_:true,T_max:20}"
  # second round: combinations of the first round's winners
  [all_augment_rotate60]="data.augment.rotate_deg=60 data.augment.scale=0.2 data.augment.time_warp=0.2 data.augment.jitter=0.3"
  [all_augment_40_epochs]="${AUGMENT} trainer.max_epochs=40"
  [all_augment_hidden128_layers2]="${AUGMENT} model.net.hidden=128 model.net.layers=2 model.net.dropout=0.2"
)
ROUND1="baseline rotate15 rotate30 scale time_warp jitter all_augment bidirectional hidden128_layers2 adamw cosine"
ROUND2="all_augment_rotate60 all_augment_40_epochs all_augment_hidden128_layers2"
for name in ${ONLY:-$ROUND1 $ROUND2}; do
  [ -d "$OUT/$name" ] && continue  # already screened
  # shellcheck disable=SC2086
  $PY train.py cv=users cv.val_users=0 "cv.users=$USERS" ${OPTIONS[$name]} $QUIET \
    hydra.run.dir="$OUT/$name.partial" > /dev/null 2>&1
  mv "$OUT/$name.partial" "$OUT/$name"
  echo "screened $name"
done
