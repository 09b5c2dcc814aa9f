#!/usr/bin/env bash
# Reproduces reports/representations: the DCGAN discriminator next to other representations -- a VAE's latent
# code (the paper's "M1") and its encoder's conv layers, k-means, the random-weight D, a random-weight ResNet-18
# and raw pixels -- each read by a linear L2-SVM and by a kNN vote, on CIFAR-10 (the report split) and the SVHN
# slice. Run from the repository root after installing gan-probe (pip install -c constraints.txt -e ".[fid]").
# It reuses the DCGAN / random-D / SVHN k-means and pixel stores of reports/anchors (run its commands.sh first).
# Everything ran on a 2-core CPU.
set -euo pipefail
DATA=${DATA:-/tmp/gp_data}
CIFAR=$DATA/cifar10                 # tar -xzf cifar10-train-jpeg.tar.gz -C $DATA/cifar10  (train/<class>/*.jpg)
TINY=${TINY:-/tmp/tiny}             # tar -xzf tiny-imagenet-32.tar.gz -C /tmp/tiny           (train/<wnid>/...)
SVHN=${SVHN:-../shared/data/svhn-slice-dev_32x32.mat}
A=runs/anchors                      # the stores of reports/anchors/commands.sh
R=runs/repr
C10="--dataset cifar10 --data-root $CIFAR --holdout 10000 --no-progress"
S="--dataset svhn --data-root $SVHN --holdout 2000 --no-progress"
mkdir -p $R/feats $R/results

# 1. the VAE: paper32's layout (D as encoder, G as decoder) at a quarter of its width, trained on Tiny-ImageNet-32
[ -f $R/vae/checkpoint.pt ] || gan-probe train --model vae --dataset imagenet --data-root $TINY --preset paper32 \
  --ndf 32 --ngf 32 --batch-size 128 --max-steps 500 --log-every 50 --sample-every 500 --checkpoint-every 250 \
  --seed 0 --no-progress --out $R/vae

# 2. feature stores: the VAE's encoder (conv1..conv6 pooled to 4x4, and mu), a random-weight ResNet-18's four
#    stages pooled the same way, and on CIFAR-10 the k-means and pixel stores (SVHN's are in reports/anchors)
for set in svhn cifar10; do
  if [ $set = svhn ]; then D=$S; else D=$C10; fi
  [ -f $R/feats/$set-vae/meta.json ] || gan-probe extract --checkpoint $R/vae/checkpoint.pt $D --out $R/feats/$set-vae
  [ -f $R/feats/$set-resnet18/meta.json ] || gan-probe extract --model torchvision:resnet18 \
    --layers layer1,layer2,layer3,layer4 $D --out $R/feats/$set-resnet18
done
[ -f $R/feats/cifar10-pixels/meta.json ] || gan-probe kmeans $C10 --raw-pixels --out $R/feats/cifar10-pixels
[ -f $R/feats/cifar10-kmeans1600/meta.json ] || gan-probe kmeans $C10 --centroids 1600 --out $R/feats/cifar10-kmeans1600
VAE_CONV=0,1,2,3,4,5                # the encoder's conv layers in the VAE stores; mu is layer 6
VAE_MU=6

# 3. every representation through both classifiers, with the same splits and draws
probe() {  # name, store, flags...: one L2-SVM and one kNN (weighted vote) result
  local name=$1 store=$2; shift 2
  [ -f $R/results/$name-svm.json ] || gan-probe svm --features $store "$@" --C-grid 1e-5,1e-4,1e-3,1e-2 \
    --no-progress --json $R/results/$name-svm.json
  [ -f $R/results/$name-knn.json ] || gan-probe knn --features $store "$@" --json $R/results/$name-knn.json
}
SV="--labels 1000 --val-size 1000 --draws 10 --selection-draws 10"     # SVHN slice: 1,000 labels
for rep in dcgan random-d kmeans1600 pixels; do probe svhn-$rep $A/feats/svhn-$rep $SV; done
probe svhn-resnet18 $R/feats/svhn-resnet18 $SV
probe svhn-vae-conv $R/feats/svhn-vae --layers $VAE_CONV $SV
probe svhn-vae-mu $R/feats/svhn-vae --layers $VAE_MU $SV
C4="--labels-per-class 400 --draws 3 --selection-draws 1"              # CIFAR-10: 400 labels per class
for rep in dcgan random-d; do probe cifar10-$rep $A/feats/cifar10-$rep $C4; done   # conv1-4 (12,288 dims)
for rep in kmeans1600 pixels resnet18; do probe cifar10-$rep $R/feats/cifar10-$rep $C4; done
probe cifar10-vae-conv $R/feats/cifar10-vae --layers $VAE_CONV $C4
probe cifar10-vae-mu $R/feats/cifar10-vae --layers $VAE_MU $C4

# 4. the report
gan-probe report $R/results $R/vae --title "Representations compared: DCGAN D, VAE, k-means, random networks, pixels" \
  --out reports/representations/report
