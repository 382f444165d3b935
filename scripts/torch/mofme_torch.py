"""Our MoFME network, written a second time in PyTorch: the "twin" of packages/mofme/src/model.ts.

Why it exists: to measure our engine against PyTorch on the SAME network with the SAME weights
(the model table of `pnpm bench`, bench/model.bench.ts), to check our forward against an
independent implementation (packages/mofme/test/torch-twin.test.ts), and to train a model of ours
on many processes or machines with PyTorch's DistributedDataParallel and bring it back
(scripts/torch/ddp_train.py). It is NOT the official MoFME-Pytorch code: it is built from OUR
config JSON (the `config` entry of a checkpoint's safetensors metadata, every field of
packages/mofme/src/config.ts) and uses OUR parameter names, so `model.safetensors` files written by
`mofme train` load with `load_state_dict(strict=True)` and the twin writes files that `mofme eval`
reads back. Every switch of the config is honoured: ffn dense / moe / mofme, linear and
Uncertainty-aware routers, top-k modes, dense and sparse expert execution, officialExpertSlots,
officialUnusedParams (posEmbed, the FiLM experts' dead LayerNorm), residualOutput, dropout.
(officialSharedInit only matters when initialising; weights always come from a file here.)

Randomness: dropout and the UaR's Monte-Carlo dropout draw from torch's generator, not from our
engine's, so in training mode, and in eval mode with the UaR active, the two networks agree in
distribution only. Eval forwards with the linear router (or the UaR with `whenEval: 'linear'`) are
deterministic and must agree with ours to float32 rounding; the twin test checks that.

Needs only torch and numpy (Debian: python3-torch). Safetensors are read and written here, in a few
lines, because Debian ships no python3-safetensors.

Command line (used by the tests):
  python3 mofme_torch.py forward CHECKPOINT INPUT.safetensors OUTPUT.safetensors
      eval forward of tensor `x` [B, 3, H, W] from INPUT, writes `image` to OUTPUT
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------
# safetensors (https://github.com/huggingface/safetensors): 8-byte little-endian header length,
# a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the bytes.
# ----------------------------------------------------------------------------------------------

_NUMPY_DTYPES = {
    'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2',
    'I8': 'i1', 'U8': 'u1', 'BOOL': '?',
}
_TORCH_TO_SAFETENSORS = {torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.int64: 'I64',
                         torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8', torch.bool: 'BOOL'}


def load_safetensors(path):
    """-> (dict name -> tensor, metadata dict). float tensors keep their width (F32 stays float32)."""
    with open(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f'{path}: {len(raw)} bytes, too short for a safetensors file')
    (n,) = struct.unpack('<Q', raw[:8])
    if n > min(len(raw) - 8, 100_000_000):
        raise ValueError(f'{path}: header length {n} exceeds the file ({len(raw)} bytes)')
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    metadata = header.pop('__metadata__', {}) or {}
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info['data_offsets']
        shape = info['shape']
        if info['dtype'] == 'BF16':  # bfloat16 = the top half of a float32
            bits = np.frombuffer(data[begin:end], dtype='<u2').astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif info['dtype'] in _NUMPY_DTYPES:
            array = np.frombuffer(data[begin:end], dtype=_NUMPY_DTYPES[info['dtype']])
        else:
            raise ValueError(f'{path}: tensor {name}: unsupported dtype {info["dtype"]}')
        tensors[name] = torch.from_numpy(array.copy()).reshape(shape)
    return tensors, metadata


def save_safetensors(path, tensors, metadata=None):
    """Write atomically (temporary file in the same folder, fsync, rename), 8-byte aligned data."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_SAFETENSORS:
            raise ValueError(f'{path}: tensor {name}: dtype {t.dtype} has no safetensors name here')
        b = t.numpy().tobytes()
        header[name] = {'dtype': _TORCH_TO_SAFETENSORS[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in chunks:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# The network (same structure and parameter names as model.ts; shapes: B batch, N tokens, D width)
# ----------------------------------------------------------------------------------------------

def mlp_hidden(c):
    return c.get('mlpHidden') or int(c['dim'] * c['mlpRatio'])


class Mlp(nn.Module):
    """[norm] -> fc1 -> GELU -> dropout -> fc2 -> dropout (dense FFN, each MoE expert, FME's shared FFN)."""

    def __init__(self, c, with_norm):
        super().__init__()
        D, Fh = c['dim'], mlp_hidden(c)
        if with_norm:
            self.norm = nn.LayerNorm(D, eps=c['layerNormEps'])
        else:
            self.norm = None
        self.fc1 = nn.Linear(D, Fh)
        self.fc2 = nn.Linear(Fh, D)
        self.p = c['dropout']

    def forward(self, z):
        u = self.norm(z) if self.norm is not None else z
        h = F.dropout(F.gelu(self.fc1(u)), self.p, self.training)
        return F.dropout(self.fc2(h), self.p, self.training)


class Attention(nn.Module):
    """Pre-norm multi-head self-attention; qkv features q|k|v, head-major inside each (as ours)."""

    def __init__(self, c):
        super().__init__()
        D, inner = c['dim'], c['heads'] * c['headDim']
        self.heads, self.head_dim, self.p = c['heads'], c['headDim'], c['dropout']
        self.norm = nn.LayerNorm(D, eps=c['layerNormEps'])
        self.qkv = nn.Linear(D, 3 * inner, bias=False)
        self.out = nn.Linear(inner, D)

    def forward(self, t):
        B, N, _ = t.shape
        H, dh = self.heads, self.head_dim
        q, k, v = self.qkv(self.norm(t)).reshape(B, N, 3, H, dh).permute(2, 0, 3, 1, 4)  # each [B, H, N, dh]
        attn = (q @ k.transpose(-1, -2) * dh ** -0.5).softmax(-1)  # [B, H, N, N]
        o = (attn @ v).permute(0, 2, 1, 3).reshape(B, N, H * dh)  # [B, N, I]
        return F.dropout(self.out(o), self.p, self.training)


def top_mask(scores, k):
    """0/1 mask of the k largest entries along the last axis (ours breaks ties by lower index;
    with real-valued weights ties do not occur), and the selected indices [..., k]."""
    idx = scores.detach().topk(k, dim=-1).indices
    return torch.zeros_like(scores).scatter(-1, idx, 1.0), idx


def norm_floor(x, eps):
    return x.square().sum(-1, keepdim=True).clamp_min(eps * eps).sqrt()


def linear_route(logits, k, mode):
    mask, idx = top_mask(logits, k)
    e = (logits - logits.detach().amax(-1, keepdim=True)).exp()
    if mode == 'maskThenSoftmax':
        kept = e * mask
        return kept / kept.sum(-1, keepdim=True), idx
    return e / e.sum(-1, keepdim=True) * mask, idx


def uar_route(t, router, k, u):
    """The Uncertainty-aware Router of router.ts with torch's dropout for the M Monte-Carlo passes
    (always on, whatever the mode: that is what MC dropout is)."""
    M = u['samples']
    if u['dropoutPlace'] == 'input':
        samples = [router(F.dropout(t, u['dropout'], True)).softmax(-1) for _ in range(M)]
    else:
        z = F.linear(t, router.weight)
        samples = [(F.dropout(z, u['dropout'], True) + router.bias).softmax(-1) for _ in range(M)]
    clean = router(t)
    r = torch.stack(samples, 0)
    mu = r.mean(0)
    v = (r - mu).square().sum(0) / (M - 1 if u['unbiased'] else M) + u['eps']
    if u['detachStats']:
        mu, v = mu.detach(), v.detach()
    pre = top_mask(clean, k) if u['topk'] == 'beforeCalibration' else None

    def unit(d):
        d = d * pre[0] if pre is not None else d
        return d / norm_floor(d, u['eps'])

    if u['numerator'] == 'clean':
        cal = unit((clean.softmax(-1) - mu) / v)
    else:
        cal = torch.stack([unit((rm - mu) / v) for rm in samples], 0).mean(0)
    s = cal if u['sign'] == 'keep' else cal.relu() if u['sign'] == 'relu' else cal.abs()
    mask, idx = pre if pre is not None else top_mask(s, k)
    w = s * mask
    return w / norm_floor(w, u['eps']), idx


def route(t, router, c, training):
    when = c['uar']['whenTraining'] if training else c['uar']['whenEval']
    if c['router'] == 'uar' and when == 'uar':
        return uar_route(t, router, c['topk'], c['uar'])
    return linear_route(router(t), c['topk'], c['topkMode'])


def mix_experts(x, weights, idx, slot, sparse):
    """Σ_c w[..., c] · slot(c, x). dense: every slot on every token; sparse: each slot on the
    tokens that selected it only (index_select, then index_add back), k/E of the compute."""
    B, N, D = x.shape
    E = weights.shape[-1]
    if not sparse:
        return sum(slot(c, x) * weights[..., c:c + 1] for c in range(E))
    xt, wt, it = x.reshape(B * N, D), weights.reshape(B * N, E), idx.reshape(B * N, -1)
    acc = x.new_zeros(B * N, D)
    for c in range(E):
        rows = (it == c).any(-1).nonzero().flatten()
        if rows.numel() == 0:
            continue
        ye = slot(c, xt.index_select(0, rows)) * wt.index_select(0, rows)[:, c:c + 1]
        acc = acc.index_add(0, rows, ye)
    return acc.reshape(B, N, D)


class DenseFfn(Mlp):
    def __init__(self, c):
        super().__init__(c, True)

    def branch(self, t):
        return self.forward(t)


class MoeFfn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.router = nn.Linear(c['dim'], c['experts'])
        self.experts = nn.ModuleList([Mlp(c, True) for _ in range(c['experts'])])

    def branch(self, t):
        w, idx = route(t, self.router, self.c, self.training)
        return mix_experts(t, w, idx, lambda e, z: self.experts[e](z), self.c['execution'] == 'sparse')


class FilmExpert(nn.Module):
    """m(h) = γ(h) ⊙ h + β(h); `norm` is the official code's never-called LayerNorm (loaded, unused)."""

    def __init__(self, c):
        super().__init__()
        self.gamma = nn.Linear(c['dim'], c['dim'])
        self.beta = nn.Linear(c['dim'], c['dim'])
        if c['officialUnusedParams']:
            self.norm = nn.LayerNorm(c['dim'], eps=c['layerNormEps'])

    def forward(self, h):
        return self.gamma(h) * h + self.beta(h)


class GatedUnit(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate = nn.Linear(c['dim'], c['dim'])
        self.value = nn.Linear(c['dim'], c['dim'])

    def forward(self, u):
        return F.gelu(self.gate(u)) * self.value(u)


class FmeExperts(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.film = nn.ModuleList([FilmExpert(c) for _ in range(c['experts'])])


class FmeFfn(nn.Module):
    """FME(t) = shared( Σ_c w_c(t) · slot_c(h) ), h = gated(LN(t)); the router reads t itself."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.router = nn.Linear(c['dim'], c['experts'])
        self.norm = nn.LayerNorm(c['dim'], eps=c['layerNormEps'])
        self.base = GatedUnit(c)
        self.experts = FmeExperts(c)
        self.shared = Mlp(c, False)

    def slot(self, col, h):
        if not self.c['officialExpertSlots']:
            return self.experts.film[col](h)
        return F.gelu(h) if col == 0 else self.experts.film[col - 1](h)

    def branch(self, t):
        w, idx = route(t, self.router, self.c, self.training)
        h = self.base(self.norm(t))
        return self.shared(mix_experts(h, w, idx, self.slot, self.c['execution'] == 'sparse'))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn = Attention(c)
        self.ffn = {'dense': DenseFfn, 'moe': MoeFfn, 'mofme': FmeFfn}[c['ffn']](c)

    def forward(self, t):
        a = t + self.attn(t)
        return a + self.ffn.branch(a)


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(3, c['headChannels'], 3, padding=1)
        self.res = nn.ModuleList([ResBlock(c['headChannels']) for _ in range(c['headResBlocks'])])

    def forward(self, x):
        y = self.conv(x)
        for r in self.res:
            y = r(y)
        return y


class Tail(nn.Module):
    def __init__(self, c):
        super().__init__()
        ct = c['tailChannels']
        self.res1 = nn.ModuleList([ResBlock(ct) for _ in range(c['tailResBlocks'])])
        self.reduce = nn.Conv2d(ct, ct // 2, 3, padding=1)
        self.res2 = nn.ModuleList([ResBlock(ct // 2) for _ in range(c['tailResBlocks'])])
        self.out = nn.Conv2d(ct // 2, 3, 3, padding=1)

    def forward(self, y):
        for r in self.res1:
            y = r(y)
        y = self.reduce(y)
        for r in self.res2:
            y = r(y)
        return self.out(y)


class PatchEmbed(nn.Module):
    """conv with kernel = stride = p (ours computes it as patchify + matmul: the same sum), then LN."""

    def __init__(self, c):
        super().__init__()
        self.p = c['patchSize']
        self.proj = nn.Conv2d(c['headChannels'], c['dim'], self.p, stride=self.p)
        self.norm = nn.LayerNorm(c['dim'], eps=c['layerNormEps'])

    def forward(self, f):
        return self.norm(self.proj(f).flatten(2).transpose(1, 2))  # [B, N, D], tokens row-major


class PatchUnembed(nn.Module):
    """Linear D -> p·p·Ct per token, features (p1, p2, c) laid back onto the token's patch."""

    def __init__(self, c):
        super().__init__()
        self.p, self.ct = c['patchSize'], c['tailChannels']
        self.weight = nn.Parameter(torch.empty(self.p * self.p * self.ct, c['dim']))
        self.bias = nn.Parameter(torch.empty(self.p * self.p * self.ct))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(c['dim']), 1 / math.sqrt(c['dim']))

    def forward(self, t, H, W):
        p, C = self.p, self.ct
        B = t.shape[0]
        y = F.linear(t, self.weight, self.bias).reshape(B, H // p, W // p, p, p, C)
        return y.permute(0, 5, 1, 3, 2, 4).reshape(B, C, H, W)


class MoFME(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.head = Head(c)
        self.patchEmbed = PatchEmbed(c)
        if c['officialUnusedParams']:  # allocated, never added (official dead tensor)
            n = (c['imageSize'] // c['patchSize']) ** 2
            self.posEmbed = nn.Parameter(torch.randn(1, n, c['dim']))
        self.blocks = nn.ModuleList([Block(c) for _ in range(c['depth'])])
        self.unpatchify = PatchUnembed(c)
        self.tail = Tail(c)

    def forward(self, x):
        """x [B, 3, H, W] in [-1, 1], H and W multiples of the patch size -> image [B, 3, H, W] in [0, 1]"""
        _, C, H, W = x.shape
        p = self.c['patchSize']
        if C != 3 or H % p or W % p:
            raise ValueError(f'MoFME twin: expected [B, 3, H, W] with H, W multiples of {p}, got {list(x.shape)}')
        t = F.dropout(self.patchEmbed(self.head(x)), self.c['embedDropout'], self.training)
        for block in self.blocks:
            t = block(t)
        out = self.tail(self.unpatchify(t, H, W))
        if self.c['residualOutput']:
            return torch.clamp((x + 1) * 0.5 + out, 0, 1)
        return torch.sigmoid(out)


def load_model(path, dtype=torch.float32):
    """Build the twin from a checkpoint of ours (its metadata `config`) and load it strictly."""
    tensors, metadata = load_safetensors(path)
    if 'config' not in metadata:
        raise ValueError(f'{path}: no model config in the safetensors metadata (not a mofme-ts model file?)')
    config = json.loads(metadata['config'])
    model = MoFME(config).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in tensors.items()}, strict=True)
    return model.eval(), config, metadata


def save_model(path, model, step=0):
    """A model file `mofme eval` / `restore` read: our names, the config and step in the metadata."""
    module = model.module if hasattr(model, 'module') else model  # a DDP wrapper adds `module.`
    tensors = {k: v.float() for k, v in module.state_dict().items()}
    save_safetensors(path, tensors, {'format': 'mofme-ts/1', 'config': json.dumps(module.c), 'step': str(step)})


def tile_starts(size, tile, stride):
    starts, s = [], 0
    while s + tile < size:
        starts.append(s)
        s += stride
    return starts + [size - tile]


@torch.no_grad()
def restore(model, x, tile=240, stride=120):
    """Overlapping windows averaged, as packages/mofme/src/restore.ts (sides here must be at least
    one window and multiples of the patch size; the bench's 720x480 photo is)."""
    B, C, H, W = x.shape
    th, tw = min(tile, H), min(tile, W)
    total = torch.zeros_like(x)
    count = torch.zeros(1, 1, H, W)
    for y0 in tile_starts(H, th, stride):
        for x0 in tile_starts(W, tw, stride):
            total[:, :, y0:y0 + th, x0:x0 + tw] += model(x[:, :, y0:y0 + th, x0:x0 + tw])
            count[:, :, y0:y0 + th, x0:x0 + tw] += 1
    return total / count


def main(argv):
    if len(argv) == 4 and argv[0] == 'forward':
        model, _, _ = load_model(argv[1])
        x = load_safetensors(argv[2])[0]['x'].float()
        with torch.no_grad():
            image = model(x)
        save_safetensors(argv[3], {'image': image})
        return 0
    print(__doc__.split('Command line (used by the tests):')[1].strip(), file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
