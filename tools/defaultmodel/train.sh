#!/usr/bin/env bash
# Trains the default model from scratch, as weights/README.md (the model
# card) describes: the classifier, the VAE, then the class-conditional
# latent UNet and its guide, timing each stage. The results go to OUT (default
# ./default-model): OUT/mnist-classifier and OUT/mnist-ldm, the folders
# weights/ ships. Run from anywhere:
#
#	tools/defaultmodel/train.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-default-model}
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
go build -o "$T/ldm" ./cmd/ldm
L="$T/ldm"
stage() { # stage NAME CMD...: runs CMD and prints its wall-clock minutes
	local name=$1 start=$SECONDS
	shift
	"$@"
	echo "$name: $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s" | tee -a "$OUT/times.txt"
}
: > "$OUT/times.txt"
exec 2> >(tee -a "$OUT/train.log" >&2)
start=$SECONDS
stage classifier $L train classifier --out "$OUT/mnist-classifier" --steps 1500 --batch-size 128 --seed 1
stage vae $L train vae --out "$OUT/mnist-vae" --preset mnist-kl-4x8x8 --steps 3000 --batch-size 64 --lr 1e-3 \
	--warmup 100 --loss l1 --kl-weight 1e-6 --seed 1 --eval-every 1000 --eval-images 1000 --checkpoint-every 500
stage unet $L train unet --vae "$OUT/mnist-vae" --out "$OUT/mnist-ldm" --preset mnist-latent --steps 27000 \
	--batch-size 64 --lr 1e-3 --warmup 200 --label-dropout 0.5 --prediction-type v_prediction --min-snr-gamma 5 --sampler sde-dpm++2m \
	--seed 1 --checkpoint-every 2000 --keep-checkpoints 0 --sample-every 4000 --sample-steps 20
# The guide for autoguidance: a UNet of half the width on the same latents,
# trained for a fraction of the steps at a constant learning rate, added to
# the pipeline as guide_unet/.
stage guide $L train unet --guide-for "$OUT/mnist-ldm" --out "$OUT/mnist-ldm" --preset mnist-latent-guide --steps 1000 \
	--batch-size 64 --lr 1e-3 --lr-scheduler constant_with_warmup --warmup 200 --label-dropout 0.5 --min-snr-gamma 5 \
	--autoguidance 1.5 --seed 1 --checkpoint-every 250 --keep-checkpoints 0 --sample-every 0
echo "total: $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s" | tee -a "$OUT/times.txt"
