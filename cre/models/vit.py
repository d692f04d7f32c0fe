"""ViT-based CREs in the manner of MAE (paper Table 3; ARCHITECTURES.md "ViT family").

Layout follows MAE's ``models_mae.py``: the stages are ``forward_encoder`` /
``forward_decoder`` / ``forward_loss``, with tensor shapes in the comments
(N batch, L patches, T = 1 + kept patches, D = n the embedding width,
p patch size, C channels).

* Encoder (``ViTEncoder``): timm ``PatchEmbed`` (conv, kernel = stride = p),
  fixed 2-D sin-cos position embedding (a buffer, not trained), trained class
  token, optional per-sample random masking by shuffle, ``depth`` pre-norm timm
  ``Block`` s (qkv bias, MLP ratio 4, GELU, drop-path ``spec.drop_path`` in every
  encoder block), final LayerNorm. z = (N, 1 + kept, D), class token first.
* Decoder (``ViTDecoder``): Linear D -> D, the trained mask token fills the
  dropped positions, unshuffle, fixed sin-cos position embedding, ``depth``
  blocks (no drop-path: Table 3 shows Identity there), LayerNorm,
  Linear D -> p*p*C; the class token's output is dropped. It always returns
  every patch: (N, L, p*p*C).
* Classifier (``MeanPoolClassifier``): mean of the patch tokens (class token
  excluded; under masking, of the kept ones) -> BatchNorm1d(D, affine=False,
  eps=1e-6) -> Linear D -> 10.

No tanh at the end of the decoder: Table 3 ends the ViT decoder in a Linear
(as MAE does), unlike the FC/CNN decoders, so the reconstruction is unbounded
while its target (the normalised image) lives in [-1, 1].

Where the parameters live is fixed by the acceptance counts: the class token
belongs to the encoder, the mask token and a second final LayerNorm to the
decoder (vit-small n=4: 456 / 521 / 50).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from cre.models.base import CRE, Losses, route_latent
from cre.models.registry import register_model

NORM = partial(nn.LayerNorm, eps=1e-6)


# ----------------------------------------------------------------------------- position embedding
def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim): [sin(pos * w), cos(pos * w)] with w = 1 / 10000^(2i/dim) (MAE)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    out = pos.reshape(-1).to(torch.float64)[:, None] * omega[None, :]  # (M, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)  # (M, dim)


def sincos_2d(dim: int, grid_size: int, cls_token: bool = True) -> torch.Tensor:
    """(grid_size**2 [+1], dim) float32: half the width encodes the row, half the column.

    Same values as MAE's ``get_2d_sincos_pos_embed``; the class token (first row) gets zeros.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding width must be divisible by 4, got {dim}")
    coords = torch.arange(grid_size, dtype=torch.float64)
    gw, gh = torch.meshgrid(coords, coords, indexing="xy")  # MAE: meshgrid(grid_w, grid_h), w first
    emb = torch.cat([sincos_1d(dim // 2, gw), sincos_1d(dim // 2, gh)], dim=1)  # (L, dim)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)  # (1 + L, dim)
    return emb.to(torch.float32)


def blocks(dim: int, depth: int, heads: int, drop_path: float) -> nn.ModuleList:
    """``depth`` pre-norm timm Blocks: qkv bias, MLP ratio 4, GELU, the same drop-path rate in each."""
    return nn.ModuleList(
        Block(dim, heads, mlp_ratio=4.0, qkv_bias=True, drop_path=drop_path, norm_layer=NORM)
        for _ in range(depth)
    )


# ----------------------------------------------------------------------------- encoder
class ViTEncoder(nn.Module):
    """Image -> z = (N, 1 + kept, D); ``forward(x)`` is unmasked, ``forward_encoder`` can mask."""

    def __init__(
        self, img_size: int, patch: int, in_chans: int, dim: int, depth: int, heads: int, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch, in_chans, dim)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        grid = img_size // patch
        self.register_buffer("pos_embed", sincos_2d(dim, grid).unsqueeze(0), persistent=False)  # (1, 1 + L, D)
        self.blocks = blocks(dim, depth, heads, drop_path)
        self.norm = NORM(dim)

    @staticmethod
    def keep_count(num_patches: int, mask_ratio: float) -> int:
        """Patch tokens kept at ``mask_ratio``: int(L * (1 - ratio)) as in MAE (5 of 16 at 0.66)."""
        return int(num_patches * (1 - mask_ratio))

    def random_masking(
        self, x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample random masking by shuffling on uniform noise (MAE).

        x: (N, L, D) -> kept tokens (N, keep, D), mask (N, L) with 1 = dropped, ids_restore (N, L).
        """
        N, L, D = x.shape
        keep = self.keep_count(L, mask_ratio)
        noise = torch.rand(N, L, device=x.device, generator=generator)  # (N, L) in [0, 1)
        ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]  # (N, keep)
        x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))  # (N, keep, D)
        mask = torch.ones(N, L, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # (N, L) in the original patch order
        return x_kept, mask, ids_restore

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """imgs (N, C, H, W) -> z (N, 1 + keep, D), mask (N, L) (1 = dropped), ids_restore (N, L) or None."""
        x = self.patch_embed(imgs)  # (N, L, D)
        x = x + self.pos_embed[:, 1:, :]
        if mask_ratio > 0:
            x, mask, ids_restore = self.random_masking(x, mask_ratio, generator)  # (N, keep, D)
        else:
            mask, ids_restore = torch.zeros(x.shape[:2], device=x.device), None
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)  # (N, 1, D)
        x = torch.cat([cls, x], dim=1)  # (N, 1 + keep, D)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """Unmasked z: (N, 1 + L, D)."""
        return self.forward_encoder(imgs)[0]


# ----------------------------------------------------------------------------- decoder
class ViTDecoder(nn.Module):
    """z (N, 1 + keep, D) [+ ids_restore] -> per-patch predictions (N, L, p*p*C), every patch."""

    def __init__(self, img_size: int, patch: int, in_chans: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        grid = img_size // patch
        self.num_patches = grid * grid
        self.decoder_embed = nn.Linear(dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_2d(dim, grid).unsqueeze(0), persistent=False)  # (1, 1 + L, D)
        self.blocks = blocks(dim, depth, heads, drop_path=0.0)
        self.norm = NORM(dim)
        self.pred = nn.Linear(dim, patch * patch * in_chans)

    def forward_decoder(self, z: torch.Tensor, ids_restore: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, 1 + keep, D), ids_restore (N, L) (None: z is unmasked, in patch order) -> (N, L, p*p*C)."""
        x = self.decoder_embed(z)  # (N, 1 + keep, D)
        N, T, D = x.shape
        L = self.num_patches
        if ids_restore is None and T != L + 1:
            raise ValueError(f"decoder got {T - 1} patch tokens of {L} without ids_restore to place them")
        # The mask token fills the dropped positions (none when unmasked: it then gets a zero gradient).
        mask_tokens = self.mask_token.expand(N, L + 1 - T, D)  # (N, L - keep, D)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # (N, L, D) in shuffled order
        if ids_restore is not None:
            x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, D))  # unshuffle
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.pos_embed  # (N, 1 + L, D)
        for blk in self.blocks:
            x = blk(x)
        x = self.pred(self.norm(x))  # (N, 1 + L, p*p*C)
        return x[:, 1:, :]  # drop the class token: (N, L, p*p*C)

    def forward(self, z: torch.Tensor, ids_restore: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_decoder(z, ids_restore)


# ----------------------------------------------------------------------------- classifier
class MeanPoolClassifier(nn.Module):
    """z (N, 1 + keep, D) -> mean of the patch tokens -> BatchNorm1d(affine=False) -> Linear -> (N, classes)."""

    def __init__(self, dim: int, classes: int = 10) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z[:, 1:, :].mean(dim=1)  # (N, D): class token excluded
        return self.head(self.norm(x))  # (N, classes)


# ----------------------------------------------------------------------------- the CRE
class ViTCRE(CRE):
    """ViT encoder / MAE-style decoder / mean-pool classifier, with optional masked training.

    ``model(x)`` and ``model.encoder(x)`` are unmasked. ``losses(..., masked=True)``
    masks each sample at ``mask_ratio`` (fixed at build time from the spec) and
    measures the reconstruction loss of ``mask_variant``: v1 the mean over the
    masked patches of the per-patch MSE, v2 the MSE over the whole image.
    """

    supports_masking = True

    def __init__(
        self,
        *,
        img_size: int,
        patch: int,
        in_chans: int,
        dim: int,
        depth: int,
        heads: int,
        drop_path: float = 0.0,
        mask_ratio: float = 0.0,
        mask_variant: str | None = None,
        classes: int = 10,
    ) -> None:
        if dim % heads:
            raise ValueError(f"embedding width must be divisible by {heads} (heads), got {dim}")
        num_patches = (img_size // patch) ** 2
        if mask_ratio:
            keep = ViTEncoder.keep_count(num_patches, mask_ratio)
            if not 1 <= keep < num_patches:
                raise ValueError(
                    f"mask_ratio {mask_ratio!r} keeps {keep} of {num_patches} patches; "
                    f"it must keep at least 1 and mask at least 1"
                )
            if mask_variant not in ("v1", "v2"):
                raise ValueError(f"mask_variant must be v1 or v2 when masking, got {mask_variant!r}")
        super().__init__(
            ViTEncoder(img_size, patch, in_chans, dim, depth, heads, drop_path),
            ViTDecoder(img_size, patch, in_chans, dim, depth, heads),
            MeanPoolClassifier(dim, classes),
        )
        self.patch = patch
        self.in_chans = in_chans
        self.grid = img_size // patch
        self.mask_ratio = float(mask_ratio)
        self.mask_variant = mask_variant if mask_ratio else None
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """MAE's initialisation: xavier-uniform Linears and patch conv, N(0, 0.02) class/mask tokens."""
        w = self.encoder.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.encoder.cls_token, std=0.02)
        nn.init.normal_(self.decoder.mask_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ---------------------------------------------------------------- patches
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, p*p*C), patches in row-major order, pixels (p, q, c) within a patch."""
        p, h, c = self.patch, self.grid, self.in_chans
        x = imgs.reshape(imgs.shape[0], c, h, p, h, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(imgs.shape[0], h * h, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, p*p*C) -> (N, C, H, W); inverse of ``patchify``."""
        p, h, c = self.patch, self.grid, self.in_chans
        x = x.reshape(x.shape[0], h, h, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, h * p)

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unmasked: (reconstruction (N, C, H, W), logits (N, classes))."""
        z = self.encoder(x)  # (N, 1 + L, D)
        return self.unpatchify(self.decoder(z)), self.classifier(z)

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction loss. imgs (N, C, H, W), pred (N, L, p*p*C), mask (N, L) with 1 = dropped.

        mask None: MSE over the whole image (v2, and unmasked). Otherwise (v1): the
        mean over the masked patches of each patch's mean squared error.
        """
        target = self.patchify(imgs)  # (N, L, p*p*C)
        loss = (pred - target).pow(2).mean(dim=-1)  # (N, L) per-patch MSE
        if mask is None:
            return loss.mean()
        return (loss * mask).sum() / mask.sum()

    def losses(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        lam: float,
        *,
        masked: bool = False,
        generator: torch.Generator | None = None,
    ) -> Losses:
        """As ``CRE.losses``; with ``masked`` and a mask ratio > 0, the masked objective of ``mask_variant``."""
        ratio = self.mask_ratio if masked else 0.0
        z, mask, ids_restore = self.encoder.forward_encoder(x, ratio, generator)  # (N, 1 + keep, D), (N, L)
        z_dec, z_cls = route_latent(z, lam)
        pred = self.decoder(z_dec, ids_restore)  # (N, L, p*p*C)
        logits = self.classifier(z_cls)  # (N, classes)
        mse = self.forward_loss(x, pred, mask if (ratio and self.mask_variant == "v1") else None)
        return Losses(mse, F.cross_entropy(logits, y), logits)


# ----------------------------------------------------------------------------- registry
VIT_CONFIGS: dict[str, dict[str, int]] = {
    "small": {"img_size": 28, "patch": 7, "in_chans": 1, "depth": 1, "heads": 4},
    "large": {"img_size": 32, "patch": 2, "in_chans": 3, "depth": 7, "heads": 8},
}


def _latent_check(heads: int):  # noqa: ANN202
    # The 2-D sin-cos embedding needs a multiple of 4 as well (both hold for 4 and 8 heads).
    m = heads * 4 // math.gcd(heads, 4)

    def check(n: int) -> str:
        return "" if n % m == 0 else f"must be divisible by {m} ({heads} attention heads, 2-D sin-cos embedding)"

    return check


def _mask_check(num_patches: int):  # noqa: ANN202
    def check(spec) -> str:  # noqa: ANN001 - TrialSpec
        if not spec.mask_ratio:
            return ""
        keep = ViTEncoder.keep_count(num_patches, spec.mask_ratio)
        if 1 <= keep < num_patches:
            return ""
        return (f"mask_ratio must keep at least 1 and mask at least 1 of the {num_patches} patches of "
                f"{spec.model} (it keeps {keep}), got {spec.mask_ratio!r}")

    return check


def vit_cre(size: str, spec) -> ViTCRE:  # noqa: ANN001 - TrialSpec
    """The ViT CRE of one size for a spec: n = latent_dim, drop_path, mask_ratio / mask_variant."""
    return ViTCRE(
        **VIT_CONFIGS[size],
        dim=spec.latent_dim,
        drop_path=spec.drop_path,
        mask_ratio=spec.mask_ratio,
        mask_variant=spec.mask_variant,
    )


def _register(size: str) -> None:
    c = VIT_CONFIGS[size]
    tokens = (c["img_size"] // c["patch"]) ** 2

    @register_model(
        f"vit-{size}",
        input_shape=(c["in_chans"], c["img_size"], c["img_size"]),
        options=("drop_path", "mask_ratio"),
        latent_check=_latent_check(c["heads"]),
        spec_check=_mask_check(tokens),
        family="vit",
        description=(
            f"ViT CRE, {size}: {c['in_chans']}x{c['img_size']}x{c['img_size']}, patch {c['patch']} "
            f"({tokens} tokens + class), depth {c['depth']}, {c['heads']} heads, width n; MAE masking"
        ),
    )
    def build(spec):  # noqa: ANN001 - TrialSpec
        return vit_cre(size, spec)


for _size in VIT_CONFIGS:
    _register(_size)
