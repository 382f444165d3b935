#!/usr/bin/env python3
"""Build the official-parity fixtures: small models with the official module tree and key names,
written in PyTorch from the description in shared/docs/official-state-dicts.md and
mofme-paper.md §1-§4 (no code of the official repository is used), run in eval mode on a fixed
input, and saved as safetensors: every parameter under its official name, plus `__input__`
(normalised to [-1, 1]) and `__output__`.

Run with Debian's PyTorch:  /usr/bin/python3 scripts/make-official-fixture.py
(writes test/fixtures/official-{dense,moe,mofme}-mini.safetensors). The TypeScript test
test/official.test.ts loads them; it does not need PyTorch.
`--check FILE KIND` goes the other way: FILE is a safetensors file exported by our
`toOfficialStateDict` plus `__input__` and `__output__` (scripts/export-check.ts writes them).

Mini configuration (every part of the official network, at toy widths): 16x16 input, patch 4
(16 tokens), D = 32, 2 heads of 8 (inner 16 != D), FFN hidden 128, head 8 channels with 2
ResBlocks, tail 16 -> 8 channels with one ResBlock each, depth 2, E = 4, top-2, dropout 0.1.
"""
import json, math, os, struct
import torch
import torch.nn as nn
import torch.nn.functional as F

IMG, P, D, HEADS, DH, HID, CH, CT, DEPTH, E, K = 16, 4, 32, 2, 8, 128, 8, 16, 2, 4, 2
N = (IMG // P) ** 2


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.to_qkv = nn.Linear(D, 3 * HEADS * DH, bias=False)
        self.to_out = nn.Sequential(nn.Linear(HEADS * DH, D), nn.Dropout(0.1))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, HEADS, DH).transpose(1, 2) for t in (q, k, v))
        a = (q @ k.transpose(-1, -2) * DH ** -0.5).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(b, n, HEADS * DH)
        return self.to_out(o)


class FeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(D, HID), nn.GELU(), nn.Dropout(0.1), nn.Linear(HID, D), nn.Dropout(0.1))

    def forward(self, x):
        return self.net(x)


class PreNorm(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.norm = nn.LayerNorm(D)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class FiLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.expert = nn.ModuleList([nn.Linear(D, D), nn.Linear(D, D)])
        self.norm = nn.LayerNorm(D)  # never called

    def forward(self, h):
        return self.expert[0](h) * h + self.expert[1](h)


def route(logits):
    kth = logits.topk(K, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float('-inf')).softmax(-1)


class Net(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.patch_embed_to_img_feature = nn.Sequential(nn.Linear(D, P * P * CT))
        enc = nn.Module()
        vit = nn.Module()
        if kind == 'dense':
            vit.pos_embedding = nn.Parameter(torch.randn(1, N, D))
        else:
            vit.img_pos_embedding = nn.Parameter(torch.randn(1, N, D))
        vit.to_patch_embedding = nn.Module()
        vit.to_patch_embedding.proj = nn.Conv2d(CH, D, P, stride=P)
        vit.to_patch_embedding.norm = nn.LayerNorm(D)
        vit.transformer = nn.Module()
        layers = nn.ModuleList()
        for _ in range(DEPTH):
            if kind == 'dense':
                layers.append(nn.ModuleList([PreNorm(Attention()), PreNorm(FeedForward())]))
            elif kind == 'moe':
                layers.append(nn.ModuleList([PreNorm(Attention()), nn.Sequential(nn.Linear(D, E)),
                                             nn.ModuleList([PreNorm(FeedForward()) for _ in range(E)])]))
            else:
                basenet = nn.ModuleList([nn.Sequential(nn.Linear(D, D)), nn.Sequential(nn.Linear(D, D))])
                slots = nn.ModuleList([nn.LayerNorm(D), basenet, nn.GELU()] + [FiLM() for _ in range(E)])
                adaptor = nn.Sequential(nn.Linear(D, HID), nn.GELU(), nn.Dropout(0.1), nn.Linear(HID, D), nn.Dropout(0.1))
                layers.append(nn.ModuleList([PreNorm(Attention()), nn.Sequential(nn.Linear(D, E)), adaptor, slots]))
        vit.transformer.layers = layers
        enc.vision_transformer = vit
        self.Img_Encoder = enc
        self.head = nn.Sequential(nn.Conv2d(3, CH, 3, padding=1), ResBlock(CH), ResBlock(CH))
        self.tail = nn.Sequential(nn.Identity(), ResBlock(CT), nn.Conv2d(CT, CT // 2, 3, padding=1), ResBlock(CT // 2),
                                  nn.Conv2d(CT // 2, 3, 3, padding=1))

    def forward(self, img):
        b = img.shape[0]
        vit = self.Img_Encoder.vision_transformer
        f = self.head(img)
        x = vit.to_patch_embedding.proj(f).flatten(2).transpose(1, 2)  # [B, N, D], row-major tokens
        x = vit.to_patch_embedding.norm(x)  # the positional embedding is never added
        for layer in vit.transformer.layers:
            x = x + layer[0](x)
            if self.kind == 'dense':
                x = x + layer[1](x)
            elif self.kind == 'moe':
                w = route(layer[1](x))
                x = x + sum(w[..., e:e + 1] * layer[2][e](x) for e in range(E))
            else:
                w = route(layer[1](x))
                slots = layer[3]
                u = slots[0](x)
                h = F.gelu(slots[1][0](u)) * slots[1][1](u)
                # official off-by-one: routing weight e weights slot e + 2 (0 -> the GELU)
                s = sum(w[..., e:e + 1] * slots[e + 2](h) for e in range(E))
                x = x + layer[2](s)
        h = w_ = IMG // P
        y = self.patch_embed_to_img_feature(x).reshape(b, h, w_, P, P, CT).permute(0, 5, 1, 3, 2, 4).reshape(b, CT, IMG, IMG)
        return torch.sigmoid(self.tail(y))


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, h in header.items():
        if name == '__metadata__':
            continue
        a, b = h['data_offsets']
        dt = {'F32': torch.float32, 'F64': torch.float64}[h['dtype']]
        out[name] = torch.frombuffer(bytearray(body[a:b]), dtype=dt).reshape(h['shape']).to(torch.float32)
    return out


def check(path, kind):
    """The other direction: a dict exported by our toOfficialStateDict (+ __input__, __output__)
    loads strictly into the PyTorch model and reproduces our output."""
    t = load_safetensors(path)
    inp, ours = t.pop('__input__'), t.pop('__output__')
    net = Net(kind).eval()
    net.load_state_dict(t, strict=True)
    with torch.no_grad():
        diff = (net(inp) - ours).abs().max().item()
    print(f'{kind}: strict load ok, max |torch - ours| = {diff:.3g}')
    assert diff < 1e-4


if __name__ == '__main__':
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == '--check':
        check(sys.argv[2], sys.argv[3])
        sys.exit(0)
    out_dir = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures')
    for i, kind in enumerate(['dense', 'moe', 'mofme']):
        torch.manual_seed(i)
        net = Net(kind).eval()
        img = torch.rand(2, 3, IMG, IMG) * 2 - 1
        with torch.no_grad():
            out = net(img)
        tensors = dict(net.state_dict())
        tensors['__input__'] = img
        tensors['__output__'] = out
        path = os.path.join(out_dir, f'official-{kind}-mini.safetensors')
        save_safetensors(path, tensors)
        print(kind, len(net.state_dict()), sum(p.numel() for p in net.parameters()), 'params ->', os.path.relpath(path))
