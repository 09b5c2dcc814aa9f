#!/usr/bin/env bash
# Reproduces reports/tiny-imagenet-cpu from the data files in ../shared/data (see reports/tiny-imagenet-cpu/README.md).
# Run from the repository root after installing gan-probe (pip install -c constraints.txt -e ".[fid]").
# Finished steps are skipped on a re-run (feature stores are content-keyed; result JSONs are kept).
set -euo pipefail
DATA=${DATA:-/tmp/gp_data}          # where the archives were extracted
TINY=$DATA/tiny-imagenet-32         # tar -xzf tiny-imagenet-32.tar.gz -C $DATA/tiny-imagenet-32
CIFAR=$DATA/cifar10                 # tar -xzf cifar10-train-jpeg.tar.gz -C $DATA/cifar10  (train/<class>/*.jpg)
SVHN=${SVHN:-../shared/data/svhn-slice-dev_32x32.mat}
RUNS=${RUNS:-runs/tiny-imagenet}
CKPT=$RUNS/train/checkpoint.pt
GRID=1e-6,1e-5,1e-4,1e-3             # C values tried on the 10% validation split (all-label protocol)
KGRID=1e-4,1e-3,1e-2,1e-1            # the same for k-means, whose best C lies higher (sparser, larger features)
FEW="--C-grid 1e-6,1e-5,1e-4,1e-3,1e-2 --draws 10 --selection-draws 3"  # few labels: C chosen on the first 3 draws
mkdir -p "$RUNS/results"

# 1. DCGAN on Tiny-ImageNet-32 (the paper's 32x32 ImageNet architecture at a quarter of its width), CPU
[ -f "$CKPT" ] && [ "$(python -c "import torch;print(torch.load('$CKPT',weights_only=True)['step'])")" = 3000 ] ||
gan-probe train --dataset imagenet --data-root "$TINY" --preset paper32 --ndf 32 --ngf 32 --max-steps 3000 \
  --seed 0 --checkpoint-every 250 --sample-every 500 --log-every 25 --out "$RUNS/train" $( [ -f "$CKPT" ] && echo --resume )

# 2. CIFAR-10 features: the 50,000 training JPEGs, 10,000 held out (stratified, seed 0) as the test set of every row
gan-probe extract --checkpoint "$CKPT" --dataset cifar10 --data-root "$CIFAR" --holdout 10000 --out "$RUNS/feats/dcgan"
gan-probe extract --random-init "$CKPT" --dataset cifar10 --data-root "$CIFAR" --holdout 10000 --out "$RUNS/feats/random-d"
gan-probe kmeans --raw-pixels --dataset cifar10 --data-root "$CIFAR" --holdout 10000 --out "$RUNS/feats/pixels"
gan-probe kmeans --centroids 1600 --dataset cifar10 --data-root "$CIFAR" --holdout 10000 --out "$RUNS/feats/kmeans1600"
gan-probe kmeans --centroids 4000 --dataset cifar10 --data-root "$CIFAR" --holdout 10000 --out "$RUNS/feats/kmeans4000"

svm() {  # name, store, flags...
  local name=$1 store=$2; shift 2
  [ -f "$RUNS/results/$name.json" ] || gan-probe svm --features "$RUNS/feats/$store" "$@" --json "$RUNS/results/$name.json"
}
for f in dcgan random-d pixels; do
  svm "cifar10-$f-full" "$f" --C-grid $GRID
  svm "cifar10-$f-400" "$f" --labels-per-class 400 $FEW
done
svm cifar10-kmeans1600-full kmeans1600 --C-grid $KGRID  # chosen like every row; Coates & Ng fixed C = 100, i.e. 0.0025 here
svm cifar10-kmeans1600-400 kmeans1600 --labels-per-class 400 $FEW
svm cifar10-kmeans4000-full kmeans4000 --C-grid $KGRID
svm cifar10-kmeans4000-400 kmeans4000 --labels-per-class 400 $FEW

# 3. SVHN, 1,000 labels: the 6,000-digit slice, 2,000 held out as test, 1,000 of the rest for choosing C
gan-probe extract --checkpoint "$CKPT" --dataset svhn --data-root "$SVHN" --holdout 2000 --out "$RUNS/feats/svhn-dcgan"
gan-probe extract --random-init "$CKPT" --dataset svhn --data-root "$SVHN" --holdout 2000 --out "$RUNS/feats/svhn-random-d"
gan-probe kmeans --centroids 1600 --dataset svhn --data-root "$SVHN" --holdout 2000 --out "$RUNS/feats/svhn-kmeans1600"
gan-probe kmeans --raw-pixels --dataset svhn --data-root "$SVHN" --holdout 2000 --out "$RUNS/feats/svhn-pixels"
# the paper's SVHN model is a DCGAN trained on SVHN itself: the same architecture trained on the slice's 4,000
# training digits (labels unused; the 2,000 test digits left out with the same --holdout)
SVHN_CKPT=$RUNS/train-svhn/checkpoint.pt
[ -f "$SVHN_CKPT" ] || gan-probe train --dataset svhn --data-root "$SVHN" --holdout 2000 --preset paper32 --ndf 32 \
  --ngf 32 --max-steps 1500 --seed 0 --checkpoint-every 250 --sample-every 500 --log-every 25 --out "$RUNS/train-svhn"
gan-probe extract --checkpoint "$SVHN_CKPT" --dataset svhn --data-root "$SVHN" --holdout 2000 --out "$RUNS/feats/svhn-dcgan-svhn"
for f in dcgan dcgan-svhn random-d kmeans1600 pixels; do
  svm "svhn-$f-1000" "svhn-$f" --labels 1000 --val-size 1000 $FEW
done

# 4. sample quality: FID of 2,000 generated images against 2,000 Tiny-ImageNet training images (offline weights)
[ -f "$RUNS/results/fid.json" ] || gan-probe fid "$CKPT" "dataset:imagenet:$TINY:train" --samples 2000 \
  --json "$RUNS/results/fid.json"
[ -f "$RUNS/results/fid-svhn.json" ] || gan-probe fid "$SVHN_CKPT" "dataset:svhn:$SVHN:train" --samples 1000 \
  --json "$RUNS/results/fid-svhn.json"

# 5. figures of the visual analyses, then the report
gan-probe viz filters --checkpoint "$CKPT" --dataset cifar10 --data-root "$CIFAR" --layers 5 --out "$RUNS/figures/filters.png"
gan-probe viz neighbours --checkpoint "$CKPT" --out "$RUNS/figures/neighbours.png"
gan-probe viz samples --checkpoint "$CKPT" --numbers --out "$RUNS/figures/samples_numbered.png"
gan-probe viz interpolate --checkpoint "$CKPT" --rows 6 --out "$RUNS/figures/interpolation.png"
gan-probe viz arithmetic --checkpoint "$CKPT" --a 6,14,26 --b 0,52,60 --c 7,33,51 --out "$RUNS/figures/arithmetic.png"
gan-probe report "$RUNS/results" "$RUNS/train" "$RUNS/train-svhn" "$RUNS"/figures/*.png --title "DCGAN features: Tiny-ImageNet-32 -> CIFAR-10 and SVHN" \
  --out reports/tiny-imagenet-cpu/report
