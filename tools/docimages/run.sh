#!/usr/bin/env bash
# Regenerates the README's pictures in docs/img with the default model, by
# the commands the README shows. Run from anywhere: tools/docimages/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
go build -o "$T/ldm" ./cmd/ldm
L="$T/ldm"
mont() { go run ./tools/montage "$@"; }

$L sample -q -n 64 --seed 1 -o docs/img/samples.png
$L sample -q --class 7 --guidance 3 -n 16 --seed 1 -o docs/img/sevens.png

# Denoise: four test digits with noise of std 0.25 above, results below.
go run ./tools/mnistpng -o "$T/noisy" -n 4 -noise 0.25 -seed 1
$L denoise -q --strength 0.2 --seed 1 -o "$T/denoised" "$T/noisy"
mont -o docs/img/denoise.png -cols 4 "$T"/noisy/*.png "$T"/denoised/*.png

# Inpaint: the mask and four test digits above, the mask and the
# completions below.
go run ./tools/mnistpng -o "$T/clean" -n 4 -first 4 -mask "$T/mask.png"
$L inpaint -q --mask "$T/mask.png" --feather 2 --re-encode --every-class --guidance 3 --seed 1 -o "$T/inpainted" "$T/clean"
mont -o docs/img/inpaint.png -cols 5 "$T/mask.png" "$T"/clean/*.png "$T/mask.png" "$T"/inpainted/*.png

# Interpolate between a test 3 and a test 8.
go run ./tools/mnistpng -o "$T/a" -n 1 -digit 3
go run ./tools/mnistpng -o "$T/b" -n 1 -digit 8
$L interpolate -q --frames 8 -o docs/img/interpolate.png --gif docs/img/interpolate.gif "$T"/a/*.png "$T"/b/*.png

# Edit: four test 1s moved along the direction from training 1s to 7s.
go run ./tools/mnistpng -o "$T/ones" -n 4 -digit 1
$L direction -q --digits 1,7 --split train -o "$T/1to7.safetensors"
$L edit -q --direction "$T/1to7.safetensors" --alpha 1 -o "$T/edited" "$T/ones"
mont -o docs/img/edit.png -cols 4 "$T"/ones/*.png "$T"/edited/*.png
# Anomaly scores: twelve test digits and four outliers (two turned a
# quarter, two inverted), ordered by class_noise_error, most typical first.
go run ./tools/mnistpng -o "$T/mixed" -n 12 -first 100
go run ./tools/mnistpng -o "$T/mixed" -n 2 -first 200 -outlier rot90
go run ./tools/mnistpng -o "$T/mixed" -n 2 -first 300 -outlier invert
$L anomaly -q --class-min -o "$T/scores.csv" "$T/mixed"
mont -o docs/img/anomaly.png -cols 8 $(tail -n +2 "$T/scores.csv" | sort -t, -k5 -g | cut -d, -f1 | sed "s#^#$T/mixed/#")
echo "wrote docs/img"
