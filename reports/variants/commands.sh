#!/usr/bin/env bash
# Reproduces reports/variants: every --loss and --latent option of `gan-probe train`, each a small32 DCGAN trained
# for 500 steps on Tiny-ImageNet-32, probed on CIFAR-10 with the same protocol (400 labels per class, 5 draws,
# C chosen on a validation split; 10,000 training JPEGs held out as the test set, as in reports/tiny-imagenet).
# Run from the repository root; data as in reports/tiny-imagenet/commands.sh.
set -euo pipefail
DATA=${DATA:-/tmp/gp_data}
TINY=$DATA/tiny-imagenet-32
CIFAR=$DATA/cifar10
RUNS=${RUNS:-runs/variants}
STEPS=${STEPS:-500}
mkdir -p "$RUNS/results"

variant() {  # name, train flags...
  local name=$1; shift
  [ -f "$RUNS/$name/checkpoint.pt" ] ||
    gan-probe train --dataset imagenet --data-root "$TINY" --preset small32 --max-steps "$STEPS" --seed 0 \
      --sample-every "$STEPS" --log-every 10 --no-progress --out "$RUNS/$name" "$@"
  gan-probe extract --checkpoint "$RUNS/$name/checkpoint.pt" --dataset cifar10 --data-root "$CIFAR" \
    --holdout 10000 --no-progress --out "$RUNS/feats/$name"
  [ -f "$RUNS/results/$name.json" ] ||
    gan-probe svm --features "$RUNS/feats/$name" --labels-per-class 400 --draws 5 --no-progress \
      --json "$RUNS/results/$name.json"
}
variant bce-normal --loss bce --latent normal
variant ls-normal --loss ls --latent normal
variant hinge-normal --loss hinge --latent normal
variant bce-uniform --loss bce --latent uniform
variant bce-mog --loss bce --latent mog --mog-components 50

# the same D architecture with random weights, for scale
gan-probe extract --random-init small32 --dataset cifar10 --data-root "$CIFAR" --holdout 10000 --no-progress \
  --out "$RUNS/feats/random-d"
[ -f "$RUNS/results/random-d.json" ] ||
  gan-probe svm --features "$RUNS/feats/random-d" --labels-per-class 400 --draws 5 --no-progress \
    --json "$RUNS/results/random-d.json"

gan-probe report "$RUNS/results" "$RUNS"/{bce-normal,ls-normal,hinge-normal,bce-uniform,bce-mog} \
  --no-published --title "GAN variants: loss and latent prior (small32, 500 steps)" \
  --out reports/variants/report
