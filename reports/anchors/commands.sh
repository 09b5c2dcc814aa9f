#!/usr/bin/env bash
# Reproduces reports/anchors: the DCGAN authors' released discriminators run through gan-probe, next to the
# shipped paper32 D, its random-weight twin, k-means and pixels (see reports/anchors/README.md).
# Run from the repository root after installing gan-probe (pip install -c constraints.txt -e ".[fid]").
# Everything ran on a 2-core CPU. The authors' files are in ../shared/data (or: gan-probe convert dcgan-code
# DIR --download, which fetches them from github.com/Newmu/dcgan_code at a pinned commit).
set -euo pipefail
DATA=${DATA:-/tmp/gp_data}
CIFAR=$DATA/cifar10                 # tar -xzf cifar10-train-jpeg.tar.gz -C $DATA/cifar10  (train/<class>/*.jpg)
SVHN=${SVHN:-../shared/data/svhn-slice-dev_32x32.mat}
AUTHORS=${AUTHORS:-../shared/data}
CK=pretrained/dcgan-paper32-tiny-imagenet-32.pt
A=runs/anchors
mkdir -p $A/ckpt $A/feats $A/results $A/profile $A/channel-order
svm() {  # result file, feature store, flags...
  local name=$1 store=$2; shift 2
  [ -f "$name" ] || gan-probe svm --features "$store" "$@" --no-progress --json "$name"
}

# 1. convert the authors' models, in both channel orders (the probe's validation accuracy decides which is right)
for order in rgb bgr; do
  [ -f $A/ckpt/authors-svhn-$order.pt ] || gan-probe convert dcgan-code "$AUTHORS/dcgan-code-svhn" --channel-order $order --out $A/ckpt/authors-svhn-$order.pt
  [ -f $A/ckpt/authors-imagenet32-$order.pt ] || gan-probe convert dcgan-code "$AUTHORS/dcgan-code-imagenet32" --channel-order $order \
    --out $A/ckpt/authors-imagenet32-$order.pt
done

# 2. SVHN, 1,000 labels, the authors' protocol: the 6,000-digit slice with 2,000 held out as test, 1,000 of the
#    rest for validation; C from a 1-2-5 grid by the mean validation error of 10 draws, then 100 draws at that C
S="--dataset svhn --data-root $SVHN --holdout 2000 --no-progress"
SVHN_P="--labels 1000 --val-size 1000 --C-grid 1e-5,2e-5,5e-5,1e-4,2e-4,5e-4,1e-3,2e-3,5e-3,1e-2 --draws 100 --selection-draws 10"
for order in rgb bgr; do
  gan-probe extract --checkpoint $A/ckpt/authors-svhn-$order.pt $S --out $A/feats/svhn-authors-$order
  svm $A/results/svhn-authors-$order-1000.json $A/feats/svhn-authors-$order $SVHN_P
done
gan-probe extract --checkpoint "$CK" $S --out $A/feats/svhn-dcgan
gan-probe extract --random-init "$CK" $S --out $A/feats/svhn-random-d
for f in dcgan random-d; do
  svm $A/results/svhn-$f-1000.json $A/feats/svhn-$f $SVHN_P
done
# k-means and raw pixels on the same SVM path; then the paper's KNN row: raw pixels, 1,000 labels, the same splits and draws (k and T chosen on the validation rows)
[ -f $A/feats/svhn-kmeans1600/meta.json ] || gan-probe kmeans $S --centroids 1600 --out $A/feats/svhn-kmeans1600
[ -f $A/feats/svhn-pixels/meta.json ] || gan-probe kmeans $S --raw-pixels --out $A/feats/svhn-pixels
for f in kmeans1600 pixels; do
  svm $A/results/svhn-$f-1000.json $A/feats/svhn-$f $SVHN_P
done
[ -f $A/results/svhn-pixels-knn-1000.json ] || gan-probe knn --features $A/feats/svhn-pixels --labels 1000 \
  --val-size 1000 --draws 100 --selection-draws 10 --vote majority --json $A/results/svhn-pixels-knn-1000.json
[ -f $A/results/svhn-pixels-knn-weighted-1000.json ] || gan-probe knn --features $A/feats/svhn-pixels \
  --labels 1000 --val-size 1000 --draws 100 --selection-draws 10 --json $A/results/svhn-pixels-knn-weighted-1000.json

# 3. CIFAR-10, the report's split: the 50,000 training JPEGs with 10,000 held out (stratified, seed 0) as test.
#    The authors' ImageNet D lacks conv5 and conv6, so every D is probed on its layers 0-3 (12,288 dims); our D on
#    all six layers is reports/tiny-imagenet's row (the same split and protocol).
C10="--dataset cifar10 --data-root $CIFAR --holdout 10000 --no-progress"
gan-probe extract --checkpoint $A/ckpt/authors-imagenet32-rgb.pt $C10 --layers 0,1,2,3 --out $A/feats/cifar10-authors-rgb
gan-probe extract --checkpoint "$CK" $C10 --layers 0,1,2,3 --out $A/feats/cifar10-dcgan
gan-probe extract --random-init "$CK" $C10 --layers 0,1,2,3 --out $A/feats/cifar10-random-d

# 4. the channel order of the authors' ImageNet D, decided on validation rows: a 10,000-image subset of the CIFAR-10
#    JPEGs (the first 1,000 of each class), 2,000 held out, 400 labels per class, C chosen on 800 validation rows
SMALL=$DATA/cifar10-small
if [ ! -d $SMALL/train ]; then
  for d in $CIFAR/train/*/; do
    c=$(basename $d); mkdir -p $SMALL/train/$c
    ls $d | sort | sed -n 1,1000p | while read f; do ln -sf $d$f $SMALL/train/$c/$f; done
  done
fi
for order in rgb bgr; do
  gan-probe extract --checkpoint $A/ckpt/authors-imagenet32-$order.pt --dataset cifar10 --data-root $SMALL \
    --holdout 2000 --layers 0,1,2,3 --no-progress --out $A/feats/cifar10-small-authors-$order
  svm $A/channel-order/cifar10-small-authors-$order.json $A/feats/cifar10-small-authors-$order \
    --labels-per-class 400 --val-size 800 --C-grid 1e-5,1e-4,1e-3,1e-2 --draws 3 --selection-draws 3
done

# 5. the per-layer profile: each layer alone and the first k layers together, 400 labels per class (C chosen on
#    4,000 validation rows with one draw, then 3 draws), for the authors' D, ours and the random D
P="--labels-per-class 400 --C-grid 1e-5,1e-4,1e-3,1e-2 --draws 3 --selection-draws 1"
profile() {  # store, name, number of layers
  local store=$1 name=$2 n=$3 k prefix=""
  for ((k = 0; k < n; k++)); do
    svm $A/profile/cifar10-$name-conv$((k + 1)).json "$store" --layers $k $P
    prefix=${prefix:+$prefix,}$k
    [ $k -eq 0 ] || svm $A/profile/cifar10-$name-first$((k + 1)).json "$store" --layers $prefix $P
  done
}
profile $A/feats/cifar10-authors-rgb authors 4
profile $A/feats/cifar10-dcgan dcgan 4
profile $A/feats/cifar10-random-d random-d 4

# 6. all labels (C chosen on a 10% validation split, refit on all 40,000 rows), layers 0-3 of each D
GRID="--C-grid 1e-6,1e-5,1e-4,1e-3"
for f in authors-rgb dcgan random-d; do
  svm $A/results/cifar10-$f-L1-4-full.json $A/feats/cifar10-$f $GRID
done

# 7. the report
gan-probe report $A/results $A/profile --title "Anchors: the DCGAN authors' discriminators through gan-probe" \
  --out reports/anchors/report
