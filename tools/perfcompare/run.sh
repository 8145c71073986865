#!/usr/bin/env bash
# Times ldm and the PyTorch reference (../shared/ref, Debian's python3-torch)
# on the same pipeline, one right after the other, ROUNDS times over, and
# prints docs/performance.md's table: per workload and thread count, the
# median over the rounds of each run's median, and Go's better thread
# setting over PyTorch's. Run from anywhere:
#
#	tools/perfcompare/run.sh [MODEL [ROUNDS]]     # default: weights/mnist-ldm, 3
#
# Needs /usr/bin/python3 with torch (apt-get install python3-torch
# python3-numpy libopenblas0-pthread); nothing here is part of ldm.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-weights/mnist-ldm}
ROUNDS=${2:-3}
REF=../shared/ref/bench.py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
go build -o "$T/ldm" ./cmd/ldm
# ldm bench generates with "dpm++2m": the pipeline's scheduler config with
# algorithm_type dpmsolver++ (the default model's own is the SDE variant,
# which the reference does not implement). The reference reads the config
# from the folder, so it gets a copy that says the same.
cp -r "$MODEL" "$T/model"
/usr/bin/python3 - "$T/model/scheduler/scheduler_config.json" <<'PY'
import json, sys
f = sys.argv[1]
c = json.load(open(f))
c["algorithm_type"], c["solver_order"] = "dpmsolver++", 2
json.dump(c, open(f, "w"), indent=2)
PY
for r in $(seq "$ROUNDS"); do
	for th in 1 2; do
		"$T/ldm" bench --model "$MODEL" --threads "$th" --json >"$T/go-$r-$th.json"
		for w in "unet_forward --batch 1" "unet_forward --batch 32" "vae_decode --batch 32" \
			"generate --n 64 --steps 20" "train_step --batch 64"; do
			# shellcheck disable=SC2086 # w is a workload and its flags
			/usr/bin/python3 "$REF" "$T/model" --threads "$th" --what $w >>"$T/torch.jsonl"
		done
	done
	echo "round $r of $ROUNDS done" >&2
done
/usr/bin/python3 - "$T" "$ROUNDS" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
rows = [("UNet forward, batch 1", "unet_forward_batch1_s", ("unet_forward", 1)),
        ("UNet forward, batch 32", "unet_forward_batch_s", ("unet_forward", 32)),
        ("VAE decode, batch 32", "vae_decode_batch_s", ("vae_decode", 32)),
        ("generate 64, 20 DPM++ steps + decode", "generate_s", ("generate", 64)),
        ("AdamW train step, batch 64", "train_step_s", ("train_step", 64))]
go = {th: [json.load(open(f"{d}/go-{r}-{th}.json")) for r in range(1, rounds + 1)] for th in (1, 2)}
torch = {}
for line in open(f"{d}/torch.jsonl"):
    j = json.loads(line)
    torch.setdefault((j["what"], j.get("batch"), j["threads"]), []).append(j["median_s"])
med = statistics.median
print("| workload | Go 1 thread | Go 2 threads | PyTorch 1 thread | PyTorch 2 threads | Go best / PyTorch best |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for name, key, w in rows:
    g1, g2 = (med(x[key] for x in go[th]) for th in (1, 2))
    t1, t2 = (med(torch[w + (th,)]) for th in (1, 2))
    print(f"| {name} | {g1:.4g} | {g2:.4g} | {t1:.4g} | {t2:.4g} | {min(g1, g2) / min(t1, t2):.2f} |")
for th in (1, 2):
    print(f"{th} thread(s): GEMM {med(x['gemm_gflops'] for x in go[th]):.1f} GFLOP/s, "
          f"{100 * med(x['gemm_share_of_peak'] for x in go[th]):.0f}% of the FMA peak "
          f"{med(x['peak_gflops'] for x in go[th]):.1f}; peak RSS generating {med(x['generate_peak_rss_mb'] for x in go[th]):.0f} MB, "
          f"training {med(x['train_peak_rss_mb'] for x in go[th]):.0f} MB")
PY
