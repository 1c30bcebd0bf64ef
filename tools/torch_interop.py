#!/usr/bin/python3
"""Move sda score networks to and from PyTorch (Debian's python3-torch is enough).

sda writes weights in the safetensors format under the PyTorch state_dict names
of the paper's networks (Rozet & Louppe 2023, sda/score.py and sda/nn.py): the
MLP ScoreNet (sda::nn::ScoreNet) and the convolutional ScoreUNet
(sda::nn::ScoreUNet): config "kind" "mlp" or "unet"; see docs/interop.md. This script
holds the same networks in PyTorch and reads and writes those files; which
network a file holds is read from its "sda.config" metadata.

  torch_interop.py init WEIGHTS --like FILE        write a torch-initialised network (config from FILE's metadata)
  torch_interop.py eps WEIGHTS INPUTS OUT          eps(x, t) of WEIGHTS for INPUTS' tensors "x" [B, ...] and "t" [B];
                                                   when INPUTS also holds "v" [B, ...], OUT also gets
                                                   "vjp" = (d eps / dx)^T v
  torch_interop.py adamw INPUTS OUT                torch.optim.AdamW on INPUTS' "params" and "grads" [steps, n]
  torch_interop.py to-pt WEIGHTS STATE_DICT.pt     a torch.save'd state_dict, for the paper's code
  torch_interop.py export WEIGHTS MODULE.pt        a TorchScript module (traced) computing eps(x, t), for
                                                   sda::TorchScoreModel::load (sda/backend/torch.hpp)
  torch_interop.py batch COMMANDS                  the commands above, one per line of the file COMMANDS,
                                                   in one process (importing torch once)

The safetensors reader and writer below cover the format's little-endian
F32/F64 tensors and string metadata; files written here load with the
`safetensors` package too.
"""
import json
import math
import struct
import sys

import torch
import torch.nn as nn

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as handle:
        data = handle.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    metadata = header.pop("__metadata__", {})
    body = data[8 + size :]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[info["dtype"]]) if end > begin else torch.empty(0, dtype=DTYPES[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path + ".tmp", "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    import os

    os.replace(path + ".tmp", path)


# --- the paper's score network (sda/nn.py, sda/score.py, zuko's LayerNorm) ----------


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + 1e-5) over `dim`, no affine parameters (zuko's, with the variance over N - 1)."""

    def __init__(self, unbiased=True, dim=-1):
        super().__init__()
        self.unbiased, self.dim = unbiased, dim

    def forward(self, x):
        variance, mean = torch.var_mean(x, unbiased=self.unbiased, dim=self.dim, keepdim=True)
        return (x - mean) / (variance + 1e-5).sqrt()


class ResidualBlock(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


ACTIVATIONS = {"SiLU": nn.SiLU, "ReLU": nn.ReLU, "GELU": nn.GELU, "ELU": nn.ELU}


class ResMLP(nn.Sequential):
    def __init__(self, in_features, out_features, hidden, activation, unbiased):
        blocks = []
        for before, after in zip((in_features, *hidden), (*hidden, out_features)):
            if after != before:
                blocks.append(nn.Linear(before, after))
            blocks.append(ResidualBlock(LayerNorm(unbiased), nn.Linear(after, after), activation(), nn.Linear(after, after)))
        super().__init__(*blocks)


class TimeEmbedding(nn.Sequential):
    def __init__(self, features, frequencies=16, hidden=256):
        super().__init__(nn.Linear(2 * frequencies, hidden), nn.SiLU(), nn.Linear(hidden, features))
        self.register_buffer("freqs", torch.pi * torch.arange(1, frequencies + 1))

    def forward(self, t):
        t = self.freqs * t.unsqueeze(dim=-1)
        return super().forward(torch.cat((t.cos(), t.sin()), dim=-1))


class ScoreNet(nn.Module):
    """eps(x, t) = ResMLP([x, embedding(t)]) over flattened events."""

    def __init__(self, config):
        super().__init__()
        self.event = config["event"]
        features = math.prod(self.event)
        self.embedding = TimeEmbedding(config["embedding"], config["frequencies"], config["embedding_hidden"])
        self.network = ResMLP(
            features + config["embedding"], features, [config["width"]] * config["depth"],
            ACTIVATIONS[config["activation"]], config["unbiased_layer_norm"],
        )

    def forward(self, x, t):
        shape = x.shape
        x = x.reshape(shape[0], -1)
        e = self.embedding(t)
        return self.network(torch.cat((x, e), dim=-1)).reshape(shape)


# --- the paper's convolutional U-Net (sda/nn.py: ModResidualBlock, UNet; sda/score.py: ScoreUNet) ---

CONVOLUTIONS = {1: nn.Conv1d, 2: nn.Conv2d}


class ModResidualBlock(nn.Module):
    """x + residue(x + project(y)): the modulation y shifts every channel."""

    def __init__(self, project, residue):
        super().__init__()
        self.project, self.residue = project, residue

    def forward(self, x, y):
        return x + self.residue(x + self.project(y))


class UNet(nn.Module):
    """Levels of `hidden_channels[i]` channels, halving the grid at each level.

    heads[i]: a convolution (stride 2 below level 0); descent[i], ascent: modulated
    residual blocks; tails: LayerNorm over channels, nearest upsampling and a
    convolution up to the level above, or to the output at level 0. `tails` and
    `ascent` are listed from the deepest level up.
    """

    def __init__(self, in_channels, out_channels, mod_features, hidden_channels, hidden_blocks, kernel_size=3,
                 stride=2, activation=nn.SiLU, spatial=2, padding_mode="circular", unbiased=True):
        super().__init__()
        channel_dim = -(spatial + 1)

        def convolution(before, after, step=1):
            return CONVOLUTIONS[spatial](before, after, kernel_size, stride=step, padding=kernel_size // 2,
                                         padding_mode=padding_mode)

        def block(channels):
            return ModResidualBlock(
                nn.Sequential(nn.Linear(mod_features, channels), nn.Unflatten(-1, (-1,) + (1,) * spatial)),
                nn.Sequential(LayerNorm(unbiased, channel_dim), convolution(channels, channels), activation(),
                              convolution(channels, channels)),
            )

        self.heads, self.tails = nn.ModuleList(), nn.ModuleList()
        self.descent, self.ascent = nn.ModuleList(), nn.ModuleList()
        for i, (channels, blocks) in enumerate(zip(hidden_channels, hidden_blocks)):
            if i == 0:
                self.heads.append(convolution(in_channels, channels))
                self.tails.append(convolution(channels, out_channels))
            else:
                above = hidden_channels[i - 1]
                self.heads.append(nn.Sequential(convolution(above, channels, stride)))
                self.tails.append(nn.Sequential(
                    LayerNorm(unbiased, channel_dim),
                    nn.Upsample(scale_factor=(stride,) * spatial, mode="nearest"),
                    convolution(channels, above),
                ))
            self.descent.append(nn.ModuleList(block(channels) for _ in range(blocks)))
            self.ascent.append(nn.ModuleList(block(channels) for _ in range(blocks)))
        self.tails = nn.ModuleList(reversed(self.tails))
        self.ascent = nn.ModuleList(reversed(self.ascent))

    def forward(self, x, y):
        memory = []
        for head, blocks in zip(self.heads, self.descent):
            x = head(x)
            for block in blocks:
                x = block(x, y)
            memory.append(x)
        memory.pop()
        for blocks, tail in zip(self.ascent, self.tails):
            for block in blocks:
                x = block(x, y)
            x = tail(x) + memory.pop() if memory else tail(x)
        return x


class ScoreUNet(nn.Module):
    """eps(x, t) = UNet([x, context], embedding(t)), every axis of the event before the grid folded into channels."""

    def __init__(self, config):
        super().__init__()
        self.event, spatial = config["event"], config["spatial"]
        self.grid = list(self.event[-spatial:])
        self.channels = math.prod(self.event[:-spatial])
        context = torch.tensor(config["context"], dtype=torch.float64).to(torch.float32).reshape(-1, *self.grid)
        self.register_buffer("context", context, persistent=False)  # a constant of the config, not a weight
        self.embedding = TimeEmbedding(config["embedding"], config["frequencies"], config["embedding_hidden"])
        self.network = UNet(
            self.channels + context.shape[0], self.channels, config["embedding"], config["channels"], config["blocks"],
            config["kernel"], 2, ACTIVATIONS[config["activation"]], spatial, config["padding"],
            config["unbiased_layer_norm"],
        )
        self.memory_format = torch.contiguous_format  # the U-Net's input layout: torch.channels_last is an option in 2-D

    def forward(self, x, t):
        shape = x.shape
        x = x.reshape(-1, self.channels, *self.grid)
        x = torch.cat((x, self.context.expand(x.shape[0], *self.context.shape)), dim=1)
        x = x.contiguous(memory_format=self.memory_format)
        return self.network(x, self.embedding(t)).reshape(shape)


MODELS = {"mlp": ScoreNet, "unet": ScoreUNet}


def model(config):
    """The network a "sda.config" describes, by its "kind" ("mlp" or "unet")."""
    kind = config.get("kind")
    if kind not in MODELS:
        sys.exit(f"torch_interop.py: sda.config names no known architecture (kind {kind!r}; known: {sorted(MODELS)})")
    return MODELS[kind](config)


def load(path):
    tensors, metadata = read_safetensors(path)
    config = json.loads(metadata["sda.config"])
    net = model(config)
    # the weights to sample with: with an EMA, the optimiser's own weights are under "training."
    weights = {k: v.to(torch.float32) for k, v in tensors.items() if not k.startswith(("optimizer.", "training."))}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    assert set(missing) <= {"embedding.freqs"} and not unexpected, (missing, unexpected)
    return net, config


def main(argv):
    command = argv[1] if len(argv) > 1 else None
    if command == "init":
        if "--like" not in argv:
            sys.exit("torch_interop.py init: --like FILE gives the architecture")
        _, like = read_safetensors(argv[argv.index("--like") + 1])
        config = json.loads(like["sda.config"])
        torch.manual_seed(0)
        net = model(config)
        state = {k: v for k, v in net.state_dict().items() if k != "embedding.freqs"}
        metadata = {"format": "pt", "sda.config": json.dumps(config)}
        if "sda.schedule" in like:
            metadata["sda.schedule"] = like["sda.schedule"]
        write_safetensors(argv[2], state, metadata)
    elif command == "eps":
        net, _ = load(argv[2])
        inputs, _ = read_safetensors(argv[3])
        x, t = inputs["x"].to(torch.float32), inputs["t"].to(torch.float32)
        if "v" in inputs:
            x.requires_grad_(True)
            eps = net(x, t)
            (vjp,) = torch.autograd.grad(eps, x, inputs["v"].to(torch.float32))
            write_safetensors(argv[4], {"eps": eps.detach(), "vjp": vjp})
        else:
            with torch.no_grad():
                eps = net(x, t)
            write_safetensors(argv[4], {"eps": eps})
    elif command == "adamw":
        inputs, metadata = read_safetensors(argv[2])
        options = json.loads(metadata["options"])
        param = nn.Parameter(inputs["params"].clone())
        optimizer = torch.optim.AdamW([param], lr=options["lr"], betas=tuple(options["betas"]), eps=options["eps"],
                                      weight_decay=options["weight_decay"])
        lrs = inputs["lrs"].tolist()
        for grad, lr in zip(inputs["grads"], lrs):
            for group in optimizer.param_groups:
                group["lr"] = lr
            param.grad = grad.clone()
            optimizer.step()
        write_safetensors(argv[3], {"params": param.detach()})
    elif command == "to-pt":
        net, _ = load(argv[2])
        torch.save(net.state_dict(), argv[3])
    elif command == "export":
        net, config = load(argv[2])
        net.eval()
        # a trace records the operations on example inputs; sizes read from x stay symbolic,
        # so the module takes any batch (the paper's modules call super().forward, which
        # torch.jit.script does not support)
        example = (torch.randn(2, *config["event"]), torch.rand(2))
        with torch.no_grad():
            traced = torch.jit.trace(net, example, check_trace=False)
        traced.save(argv[3])
    elif command == "batch":
        import shlex
        import traceback

        failed = 0
        with open(argv[2]) as handle:
            for line in handle:
                if line.strip():
                    try:
                        main([argv[0], *shlex.split(line)])
                    except Exception:  # report it, run the rest
                        failed += 1
                        print(f"torch_interop.py: failed: {line.strip()}", file=sys.stderr)
                        traceback.print_exc()
        if failed:
            sys.exit(f"torch_interop.py batch: {failed} commands failed")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
