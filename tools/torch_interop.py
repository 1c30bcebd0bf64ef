#!/usr/bin/python3
"""Move sda score networks to and from PyTorch (Debian's python3-torch is enough).

sda writes weights in the safetensors format under the PyTorch state_dict names
of the paper's ScoreNet (Rozet & Louppe 2023, sda/score.py); see docs/interop.md.
This script holds the same network in PyTorch and reads and writes those files.

  torch_interop.py init WEIGHTS [--like FILE]      write a torch-initialised network (config from FILE's metadata)
  torch_interop.py eps WEIGHTS INPUTS OUT          eps(x, t) of WEIGHTS for INPUTS' tensors "x" [B, ...] and "t" [B]
  torch_interop.py adamw INPUTS OUT                torch.optim.AdamW on INPUTS' "params" and "grads" [steps, n]
  torch_interop.py to-pt WEIGHTS STATE_DICT.pt     a torch.save'd state_dict, for the paper's code

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
    def __init__(self, unbiased=True):
        super().__init__()
        self.unbiased = unbiased

    def forward(self, x):
        variance, mean = torch.var_mean(x, unbiased=self.unbiased, dim=-1, keepdim=True)
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


def load(path):
    tensors, metadata = read_safetensors(path)
    config = json.loads(metadata["sda.config"])
    net = ScoreNet(config)
    weights = {k: v.to(torch.float32) for k, v in tensors.items() if not k.startswith("optimizer.")}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    assert set(missing) <= {"embedding.freqs"} and not unexpected, (missing, unexpected)
    return net, config


def main(argv):
    command = argv[1]
    if command == "init":
        _, config = read_safetensors(argv[argv.index("--like") + 1]) if "--like" in argv else (None, None)
        config = json.loads(config["sda.config"])
        torch.manual_seed(0)
        net = ScoreNet(config)
        state = {k: v for k, v in net.state_dict().items() if k != "embedding.freqs"}
        write_safetensors(argv[2], state, {"format": "pt", "sda.config": json.dumps(config)})
    elif command == "eps":
        net, _ = load(argv[2])
        inputs, _ = read_safetensors(argv[3])
        with torch.no_grad():
            eps = net(inputs["x"].to(torch.float32), inputs["t"].to(torch.float32))
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
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
