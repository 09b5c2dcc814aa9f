#!/usr/bin/env bash
# Reproduces reports/probe-curve from the data files in ../shared/data (see reports/probe-curve/README.md).
# Run from the repository root after installing gan-probe (pip install -c constraints.txt -e ".[fid]").
set -euo pipefail
DATA=${DATA:-/tmp}                  # where the archives were extracted
TINY=$DATA/tiny                     # tar -xzf tiny-imagenet-32.tar.gz -C $DATA/tiny  (train/<wnid>/images/*.JPEG)
CIFAR=$DATA/cifar10                 # tar -xzf cifar10-train-jpeg.tar.gz -C $DATA/cifar10  (train/<class>/*.jpg)
RUN=${RUN:-runs/probe-curve}

# 1. small32 on Tiny-ImageNet-32 for 22 minutes of wall time (2 CPU cores), its discriminator probed at step 0 and
#    every 50 steps on 2,000 CIFAR-10 training JPEGs (1,500 fit a linear L2-SVM with C = 3e-4, 500 score it)
[ -f "$RUN/checkpoint.pt" ] ||
gan-probe train --dataset imagenet --data-root "$TINY" --preset small32 --seed 0 --max-minutes 22 --log-every 25 \
  --sample-every 500 --checkpoint-every 500 --probe-every 50 --probe-dataset cifar10 --probe-data-root "$CIFAR" \
  --no-progress --out "$RUN"

# 2. the report: training curves with the probe panel, the probe curve alone, the (step, accuracy) table
gan-probe report "$RUN" --title "Online linear probe during training: small32 on Tiny-ImageNet-32, probed on CIFAR-10" \
  --out reports/probe-curve/report
cp "$RUN/best_probe.json" reports/probe-curve/best_probe.json

# 3. the same probe on two other draws of 2,000 CIFAR-10 training images (seeds 1 and 2; seed 0 is the run's own):
#    the untrained D, the best step's D (best_probe.pt) and the last one (checkpoint.pt)
python - "$RUN" "$CIFAR" > reports/probe-curve/other_draws.csv <<'PY'
import sys

import torch

from gan_probe.models.checkpoint import load_models
from gan_probe.models import Discriminator, Generator
from gan_probe.training.probe import OnlineProbe, ProbeSettings

run, cifar = sys.argv[1:]
best, last = load_models(f"{run}/best_probe.pt"), load_models(f"{run}/checkpoint.pt")
torch.manual_seed(0)  # train's --seed 0: G, then D
Generator(last.config)
untrained = Discriminator(last.config)
models = [("untrained", 0, untrained), ("best_probe.pt", best.state["step"], best.discriminator),
          ("checkpoint.pt", last.state["step"], last.discriminator)]
print("probe_seed,model,step,probe_acc")
for seed in (0, 1, 2):
    probe = OnlineProbe(ProbeSettings("cifar10", seed=seed), last.config, cifar)
    for name, step, disc in models:
        print(f"{seed},{name},{step},{probe(disc).accuracy}")
PY
