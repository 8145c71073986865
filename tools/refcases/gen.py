"""Generates extra reference cases in the golden format (testdata/golden/README.md) for configurations the
shared golden set does not cover, using the plain-PyTorch reference in ../shared/ref (torch_ref.py, which is
bit-identical to diffusers v0.31 on torch 1.13). The Go golden test runs them from testdata/refcases.

    /usr/bin/python3 tools/refcases/gen.py [--ref ../shared/ref] [--out testdata/refcases]

Tolerances follow the golden rule: atol = smallest {1,2,5}x10^k >= max(20*dev, 4e-6*max|want|, 1e-7), where dev is
the max |float32 - float64| of the same computation.
"""
import argparse
import json
import math
import os
import sys


def atol(dev, maxabs, floor=1e-7):
    need = max(20 * dev, 4e-6 * maxabs, floor)
    k = math.floor(math.log10(need))
    for e in (k, k + 1):
        for m in (1, 2, 5):
            if m * 10.0 ** e >= need * (1 - 1e-12):
                return float(f"{m}e{e}")
    return float(f"1e{k + 2}")


def perturb(model, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            scale = 0.1 if p.dim() == 1 else 0.02
            p.add_(scale * torch.randn(p.shape, generator=g))


def write_case(out, name, kind, cls, cfg, model, inputs, outputs64, outputs32, ints, description, tr):
    import copy
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    full = dict(cfg)
    full["_class_name"] = cls
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(full, f, indent=2, sort_keys=True)
    tr.write_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"), model.state_dict())
    io = {k: v.float() for k, v in inputs.items()}
    io.update({k: v.float() for k, v in outputs32.items()})
    tr.write_safetensors(os.path.join(d, "io.safetensors"), io)
    tol, f64 = {}, {}
    for k, v in outputs32.items():
        dev = (v.double() - outputs64[k]).abs().max().item()
        mx = v.double().abs().max().item()
        f64[k] = {"max_abs_diff_f32_vs_f64": dev, "max_abs_value": mx}
        tol[k] = atol(dev, mx)
    case = {
        "name": name, "kind": kind, "model_class": cls, "description": description,
        "generator": "tools/refcases/gen.py with ../shared/ref/torch_ref.py (torch %s)" % __import__("torch").__version__,
        "inputs": sorted(inputs), "outputs": sorted(outputs32), "integer_tensors": ints,
        "tensors": {k: list(v.shape) for k, v in io.items()}, "f64_check": f64,
        "tolerance": {"atol": tol, "floor": 1e-7, "rule": "as testdata/golden: smallest {1,2,5}x10^k >= max(20*dev, 4e-6*max|want|, floor)"},
    }
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2, sort_keys=True)
    print("wrote", d)


def unet_case(tr, out, name, cfg, n, h, w, seed, classes=None):
    import copy
    import torch
    torch.manual_seed(seed)
    m = tr.UNet2DModel(**cfg).eval()
    perturb(m, seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(n, cfg["in_channels"], h, w, generator=g)
    t = torch.randint(0, 1000, (n,), generator=g)
    labels = torch.randint(0, classes, (n,), generator=g) if classes else None
    with torch.no_grad():
        y32 = m(x, t, labels)
        m64 = copy.deepcopy(m).double()
        y64 = m64(x.double(), t, labels)
    inputs = {"sample": x, "timesteps": t}
    ints = {"timesteps": "int64"}
    if classes:
        inputs["class_labels"] = labels
        ints["class_labels"] = "int64"
    write_case(out, name, "unet_forward", "UNet2DModel", cfg, m, inputs, {"out": y64}, {"out": y32}, ints,
               "out = UNet2DModel(sample, timesteps[, class_labels]) (torch_ref)", tr)


def vae_case(tr, out, name, cfg, n, h, w, seed):
    import copy
    import torch
    torch.manual_seed(seed)
    m = tr.AutoencoderKL(**cfg).eval()
    perturb(m, seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(n, cfg["in_channels"], h, w, generator=g).clamp(-1, 1)
    f = 2 ** (len(cfg["block_out_channels"]) - 1)
    z = torch.randn(n, cfg["latent_channels"], h // f, w // f, generator=g)
    eps = torch.randn(n, cfg["latent_channels"], h // f, w // f, generator=g)

    def run(model, x, z, eps):
        mom = model.moments(x)
        mean, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        kl = 0.5 * torch.sum(mean ** 2 + torch.exp(logvar) - 1.0 - logvar, dim=[1, 2, 3])
        return {"moments": mom, "posterior_mean": mean, "posterior_logvar": logvar, "posterior_std": std,
                "posterior_sample": mean + std * eps, "kl": kl, "decode_z": model.decode(z), "forward": model(x)}

    with torch.no_grad():
        o32 = run(m, x, z, eps)
        o64 = run(copy.deepcopy(m).double(), x.double(), z.double(), eps.double())
    write_case(out, name, "vae_forward", "AutoencoderKL", cfg, m, {"x": x, "z": z, "posterior_eps": eps}, o64, o32, {},
               "AutoencoderKL posterior, sample, kl, decode(z) and forward (torch_ref); same outputs as vae_small", tr)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--ref", default=os.path.join(here, "..", "..", "..", "shared", "ref"))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "testdata", "refcases"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref))
    import torch
    import torch_ref as tr
    torch.set_num_threads(1)
    base = dict(in_channels=3, out_channels=3, block_out_channels=[16, 32, 32], layers_per_block=2,
                down_block_types=["AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
                up_block_types=["AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"], norm_num_groups=8)
    unet_case(tr, a.out, "ref_unet_classcond_scaleshift", dict(
        base, num_class_embeds=7, resnet_time_scale_shift="scale_shift", attention_head_dim=None,
        downsample_padding=0, center_input_sample=True, freq_shift=1, flip_sin_to_cos=False,
        mid_block_scale_factor=1.4142135623730951, norm_eps=1e-6), 3, 8, 12, 101, classes=7)
    unet_case(tr, a.out, "ref_unet_attngroups_noattn_mid", dict(
        base, attention_head_dim=4, attn_norm_num_groups=4, add_attention=False, layers_per_block=1), 2, 16, 8, 111)
    unet_case(tr, a.out, "ref_unet_midattn_groups", dict(
        base, attention_head_dim=16, attn_norm_num_groups=2, layers_per_block=1, in_channels=1, out_channels=2), 1, 4, 4, 121)
    vae_case(tr, a.out, "ref_vae_rgb_noquant_nomidattn", dict(
        in_channels=3, out_channels=3, block_out_channels=[8, 16, 16], layers_per_block=2, latent_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3, norm_num_groups=4,
        use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=False), 2, 16, 24, 131)


if __name__ == "__main__":
    main()
