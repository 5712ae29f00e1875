"""Fourier Neural Operator in 1D and 2D (Li et al., ICLR 2021), written for scaleforge.

The network lifts the input field and its grid coordinates to ``width``
channels, applies ``depth`` Fourier layers (a spectral convolution keeping the
lowest ``modes`` frequencies plus a pointwise linear map), and projects back
with a two-layer pointwise MLP. In 2D the spectral weights cover both the
positive and the negative frequencies of the first axis (the second axis is
halved by ``rfft2``). Everything is pointwise or spectral, so a model trained
at resolution ``s`` evaluates at ``2 s``.

This module imports torch: import it lazily from code that must stay light.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["FNO", "SpectralConv1d", "SpectralConv2d"]


def _complex_weight(*shape: int, scale: float) -> nn.Parameter:
    # Stored as real (..., 2) so that DDP, gloo and every optimizer see real tensors.
    return nn.Parameter(scale * torch.rand(*shape, 2))


class SpectralConv1d(nn.Module):
    """Spectral convolution on the lowest ``modes`` Fourier modes of a 1D signal.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    modes : int
        Number of retained frequencies (at most ``s // 2 + 1``).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        self.weight = _complex_weight(
            in_channels, out_channels, modes, scale=1.0 / (in_channels * out_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the convolution to ``x`` of shape (batch, channels, s)."""
        s = x.shape[-1]
        xf = torch.fft.rfft(x.float())
        w = torch.view_as_complex(self.weight)
        out = torch.zeros(x.shape[0], w.shape[1], s // 2 + 1, dtype=xf.dtype, device=x.device)
        out[..., : self.modes] = torch.einsum("bix,iox->box", xf[..., : self.modes], w)
        result: torch.Tensor = torch.fft.irfft(out, n=s)
        return result


class SpectralConv2d(nn.Module):
    """Spectral convolution on the lowest Fourier modes of a 2D field.

    Keeps ``modes`` positive and ``modes`` negative frequencies along the first
    axis and ``modes`` non-negative frequencies along the second (the rfft axis).

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    modes : int
        Retained frequencies per axis (the grid needs ``s >= 2 * modes``).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        scale = 1.0 / (in_channels * out_channels)
        self.weight_pos = _complex_weight(in_channels, out_channels, modes, modes, scale=scale)
        self.weight_neg = _complex_weight(in_channels, out_channels, modes, modes, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the convolution to ``x`` of shape (batch, channels, s1, s2)."""
        s1, s2 = x.shape[-2:]
        m = self.modes
        xf = torch.fft.rfft2(x.float())
        wp = torch.view_as_complex(self.weight_pos)
        wn = torch.view_as_complex(self.weight_neg)
        out = torch.zeros(x.shape[0], wp.shape[1], s1, s2 // 2 + 1, dtype=xf.dtype, device=x.device)
        out[:, :, :m, :m] = torch.einsum("bixy,ioxy->boxy", xf[:, :, :m, :m], wp)
        out[:, :, -m:, :m] = torch.einsum("bixy,ioxy->boxy", xf[:, :, -m:, :m], wn)
        result: torch.Tensor = torch.fft.irfft2(out, s=(s1, s2))
        return result


class FNO(nn.Module):
    """Fourier Neural Operator mapping a scalar field to ``out_channels`` fields.

    Parameters
    ----------
    dim : {1, 2}
        Spatial dimension.
    out_channels : int, default=1
        Output channels per grid point (2 for a mean and a log-variance).
    width : int, default=32
        Channels of the Fourier layers.
    modes : int, default=12
        Retained Fourier modes per axis.
    depth : int, default=4
        Number of Fourier layers.
    hidden : int, default=128
        Width of the projection MLP; its activations are the penultimate features.
    latent : int, default=0
        Size of a noise vector ``z`` concatenated to the projection input
        (generative heads); 0 disables it.
    padding : float, default=0.0
        Zero padding appended to each axis, as a fraction of the resolution
        (non-periodic problems such as Darcy benefit from ~0.1).

    Notes
    -----
    Input ``x`` has shape (batch, s) or (batch, s1, s2); the grid coordinates in
    [0, 1] are appended as channels. ``forward`` returns (batch, *spatial, out_channels).
    """

    def __init__(
        self,
        dim: int,
        *,
        out_channels: int = 1,
        width: int = 32,
        modes: int = 12,
        depth: int = 4,
        hidden: int = 128,
        latent: int = 0,
        padding: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.latent = latent
        self.padding = padding
        self.grad_checkpointing = False
        self.lift = nn.Linear(1 + dim, width)
        conv = SpectralConv1d if dim == 1 else SpectralConv2d
        self.spectral = nn.ModuleList([conv(width, width, modes) for _ in range(depth)])
        self.pointwise = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.proj1 = nn.Linear(width + latent, hidden)
        self.proj2 = nn.Linear(hidden, out_channels)

    def _grid(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        axes = [torch.linspace(0.0, 1.0, n, device=device) for n in shape]
        mesh = torch.meshgrid(*axes, indexing="ij")
        return torch.stack(mesh, dim=-1)

    def _block(self, i: int, h: torch.Tensor) -> torch.Tensor:
        # h: (batch, width, *spatial), channels first for the spectral conv
        spec = self.spectral[i](h)
        point = self.pointwise[i](h.movedim(1, -1)).movedim(-1, 1)
        out = spec + point
        return F.gelu(out) if i < len(self.spectral) - 1 else out

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Lift and apply the Fourier layers: (batch, *spatial) -> (batch, *spatial, width)."""
        spatial = tuple(x.shape[1:])
        grid = self._grid(spatial, x.device).expand(x.shape[0], *spatial, self.dim)
        h = self.lift(torch.cat([x.unsqueeze(-1), grid], dim=-1)).movedim(-1, 1)
        pads = [round(self.padding * n) for n in spatial]
        if any(pads):
            h = F.pad(h, [p for n in reversed(pads) for p in (0, n)])
        for i in range(len(self.spectral)):
            if self.grad_checkpointing and self.training:
                h = cast(torch.Tensor, checkpoint(self._block, i, h, use_reentrant=False))
            else:
                h = self._block(i, h)
        if any(pads):
            h = h[(slice(None), slice(None), *(slice(0, n) for n in spatial))]
        out: torch.Tensor = h.movedim(1, -1)
        return out

    def features(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Penultimate features (batch, *spatial, hidden): the input of the last linear layer.

        ``z`` of shape (batch, latent) is broadcast over the grid when ``latent > 0``.
        """
        h = self.body(x)
        if self.latent:
            if z is None:
                raise ValueError("this FNO has a latent input: pass z of shape (batch, latent)")
            zz = z.view(z.shape[0], *([1] * self.dim), self.latent).expand(*h.shape[:-1], self.latent)
            h = torch.cat([h, zz.to(h.dtype)], dim=-1)
        return F.gelu(self.proj1(h))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Map (batch, *spatial) inputs to (batch, *spatial, out_channels) outputs."""
        out: torch.Tensor = self.proj2(self.features(x, z))
        return out
