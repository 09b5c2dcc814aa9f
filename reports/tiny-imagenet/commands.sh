#!/usr/bin/env bash
# Reproduces reports/tiny-imagenet from the data files in ../shared/data (see reports/tiny-imagenet/README.md).
# Run from the repository root after installing gan-probe (pip install -c constraints.txt -e ".[fid]").
# Steps 1-3 ran on one NVIDIA H200 (about 6 minutes in all), steps 4-5 on a 2-core CPU. Run directories as used
# for the committed report: runs/gpu (training and the DCGAN / random-D probes), runs/gpu2 (baselines, SVHN).
set -euo pipefail
DATA=${DATA:-/tmp/gp_data}
TINY=$DATA/tiny-imagenet-32         # tar -xzf tiny-imagenet-32.tar.gz -C $DATA/tiny-imagenet-32
CIFAR=$DATA/cifar10                 # tar -xzf cifar10-train-jpeg.tar.gz -C $DATA/cifar10  (train/<class>/*.jpg)
SVHN=${SVHN:-../shared/data/svhn-slice-dev_32x32.mat}
CK=pretrained/dcgan-paper32-tiny-imagenet-32.pt
GRID="--C-grid 1e-6,1e-5,1e-4,1e-3"          # C tried on a 10% validation split (all-label protocol)
KGRID="--C-grid 1e-4,1e-3,1e-2,1e-1"         # the same for k-means, whose best C lies higher
FEW="--C-grid 1e-6,1e-5,1e-4,1e-3,1e-2 --draws 10 --selection-draws 3"  # few labels: C chosen on 3 draws
mkdir -p runs/gpu/results runs/gpu2/results runs/gpu/figures

# 1. paper32 at full width on Tiny-ImageNet-32 for a 3-minute budget on the GPU (16,900 steps there), then the
#    half-precision copy in pretrained/ that every later step reads (weights cast back to float32 on load)
[ -f runs/gpu/train/checkpoint.pt ] ||
gan-probe train --dataset imagenet --data-root "$TINY" --preset paper32 --max-minutes 3 --max-steps 200000 \
  --seed 0 --checkpoint-every 2000 --sample-every 2000 --log-every 100 --no-progress --out runs/gpu/train
[ -f "$CK" ] || gan-probe export runs/gpu/train/checkpoint.pt --out "$CK" --index pretrained/index.json
# (to probe the committed model instead of training a new one, skip step 1: $CK is in the repository)

svm() {  # result name, feature store, flags...
  local name=$1 store=$2; shift 2
  [ -f "$name" ] || gan-probe svm --features "$store" "$@" --no-progress --json "$name"
}
# 2. CIFAR-10: the 50,000 training JPEGs, 10,000 held out (stratified, seed 0) as the test set of every row
C10="--dataset cifar10 --data-root $CIFAR --holdout 10000 --no-progress"
gan-probe extract --checkpoint "$CK" $C10 --out runs/gpu/feats/dcgan
gan-probe extract --random-init "$CK" $C10 --out runs/gpu/feats/random-d
for f in dcgan random-d; do
  svm runs/gpu/results/cifar10-$f-full.json runs/gpu/feats/$f $GRID
  svm runs/gpu/results/cifar10-$f-400.json runs/gpu/feats/$f --labels-per-class 400 $FEW
done
for k in 1600 4000; do
  gan-probe kmeans $C10 --centroids $k --out runs/gpu2/feats/kmeans$k
  svm runs/gpu2/results/cifar10-kmeans$k-full.json runs/gpu2/feats/kmeans$k $KGRID
  svm runs/gpu2/results/cifar10-kmeans$k-400.json runs/gpu2/feats/kmeans$k --labels-per-class 400 $FEW
done
gan-probe kmeans $C10 --raw-pixels --out runs/gpu2/feats/pixels
svm runs/gpu2/results/cifar10-pixels-full.json runs/gpu2/feats/pixels $GRID
svm runs/gpu2/results/cifar10-pixels-400.json runs/gpu2/feats/pixels --labels-per-class 400 $FEW

# 3. SVHN, 1,000 labels: the 6,000-digit slice, 2,000 held out as test, 1,000 of the rest for choosing C
S="--dataset svhn --data-root $SVHN --holdout 2000 --no-progress"
gan-probe extract --checkpoint "$CK" $S --out runs/gpu2/feats/svhn-dcgan
gan-probe extract --random-init "$CK" $S --out runs/gpu2/feats/svhn-random-d
gan-probe kmeans $S --centroids 1600 --out runs/gpu2/feats/svhn-kmeans1600
gan-probe kmeans $S --raw-pixels --out runs/gpu2/feats/svhn-pixels
for f in dcgan random-d kmeans1600 pixels; do
  svm runs/gpu2/results/svhn-$f-1000.json runs/gpu2/feats/svhn-$f --labels 1000 --val-size 1000 $FEW
done

# 4. sample quality (CPU): FID of 2,000 generated images against 2,000 Tiny-ImageNet training images
[ -f runs/gpu/results/fid.json ] || gan-probe fid "$CK" "dataset:imagenet:$TINY:train" --samples 2000 \
  --no-progress --json runs/gpu/results/fid.json

# 5. the visual analyses (CPU), then the report
V="--checkpoint $CK"
gan-probe viz samples $V --numbers --out runs/gpu/figures/samples_numbered.png
gan-probe viz interpolate $V --rows 6 --out runs/gpu/figures/interpolation.png
gan-probe viz arithmetic $V --a 40,47,33 --b 30,39,25 --c 20,42,52 --out runs/gpu/figures/arithmetic.png
gan-probe viz filters $V --dataset cifar10 --data-root "$CIFAR" --layers 5 --limit 10000 --no-progress \
  --out runs/gpu/figures/filters.png
gan-probe viz neighbours $V --dataset imagenet --data-root "$TINY" --no-progress \
  --out runs/gpu/figures/neighbours.png
[ -f runs/gpu/train/checkpoint.pt ] || ln -s "../../../$CK" runs/gpu/train/checkpoint.pt  # for the report's interpolation strip
gan-probe report runs/gpu/results runs/gpu2/results runs/gpu/train runs/gpu/figures/*.png \
  --title "DCGAN features: Tiny-ImageNet-32 -> CIFAR-10 and SVHN (paper32, GPU)" --out reports/tiny-imagenet/report
