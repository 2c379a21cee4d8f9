"""Geometric losses on raw (de-normalised) features, for any model that outputs the feature
layout: keypoints by differentiable forward kinematics, and contact consistency.

    fk          keypoints by forward kinematics of the predicted rotations (6D to matrices)
                and translations, against those of the true clip, both with the default hand
                skeleton: rotation errors weighed by how far they move the hand
    contact     distances between the hands' keypoints (all 21 x 21 pairs) and from each
                fingertip to the other fingers' keypoints of its hand, predicted (forward
                kinematics) against the true clip's (its own keypoints), weighted by
                exp(-d / sigma) for pairs closer than ``range_m`` in the true clip: touching
                parts must stay touching, near parts near

Both in squared centimetres.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError
from handx_gen.hand.topology import HandSide
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup

__all__ = [
    'GeometryLossConfig',
    'KEYPOINT_DIMS',
    'contact_distances',
    'fk_keypoint_features',
    'fk_keypoints',
    'geometric_losses',
    'world_keypoints',
]

_CM = 0.01


@dataclasses.dataclass(frozen=True)
class GeometryLossConfig:
    """Weights of the geometric losses (0 turns one off) and the contact weighting."""

    fk: float = 0.0  # weight of the forward-kinematics keypoint loss (cm^2)
    contact: float = 0.0  # weight of the contact-consistency loss (cm^2)
    sigma_m: float = 0.02  # pair weight exp(-d / sigma_m)...
    range_m: float = 0.06  # ...for pairs closer than this in the true clip

    def __post_init__(self) -> None:
        for name in ('fk', 'contact', 'sigma_m', 'range_m'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f'geometry {name} must be a non-negative number, '
                                  f'got {value!r}')
        if self.sigma_m <= 0:
            raise ConfigError(f'geometry sigma_m must be positive, got {self.sigma_m!r}')

    @property
    def enabled(self) -> bool:
        return self.fk > 0 or self.contact > 0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> GeometryLossConfig:
        return cls(**config_kwargs(cls, values, 'geometry'))


def geometric_losses(raw_pred: torch.Tensor, raw_true: torch.Tensor, sigma_m: float = 0.02,
                     range_m: float = 0.06) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward-kinematics keypoint loss and the contact-consistency loss (cm^2) of raw
    predicted features against raw true ones, both (..., T, D)."""
    kp_pred = fk_keypoints(raw_pred)  # (..., T, 2, 21, 3)
    with torch.no_grad():
        kp_target = fk_keypoints(raw_true)
        kp_true = world_keypoints(raw_true)  # the clip's own keypoints
    loss_fk = ((kp_pred - kp_target) / _CM).pow(2).sum(-1).mean()
    d_pred, d_true = contact_distances(kp_pred), contact_distances(kp_true)
    weight = torch.exp(-d_true / sigma_m) * (d_true < range_m)
    loss_contact = (weight * ((d_pred - d_true) / _CM).pow(2)).sum() \
        / weight.sum().clamp_min(1e-6)
    return loss_fk, loss_contact


_TIPS = (4, 8, 12, 16, 20)


def _other_finger_mask() -> torch.Tensor:
    """(5, 21) bool: keypoints that are not on the fingertip's own finger (nor the wrist)."""
    mask = torch.ones(len(_TIPS), 21, dtype=torch.bool)
    for row, tip in enumerate(_TIPS):
        mask[row, 0] = False
        mask[row, tip - 3:tip + 1] = False  # the finger's four keypoints
    return mask


_OTHER_FINGER = _other_finger_mask()
# (D,) bool: the keypoint groups of both hands, left hand's first
KEYPOINT_DIMS = torch.from_numpy(
    FEATURE_LAYOUT.group_mask((side, FeatureGroup.KEYPOINTS) for side in HandSide))


def fk_keypoints(raw: torch.Tensor) -> torch.Tensor:
    """(B, T, 2, 21, 3) keypoints by forward kinematics of raw features (default skeletons)."""
    from handx_gen.hand.kinematics import forward_kinematics_matrices_torch
    from handx_gen.hand.rotations import rot6d_to_matrix
    from handx_gen.hand.skeleton import default_skeleton

    hands = []
    for side in HandSide:
        orient = raw[..., FEATURE_LAYOUT.slice(side, FeatureGroup.GLOBAL_ORIENT)]
        pose = raw[..., FEATURE_LAYOUT.slice(side, FeatureGroup.HAND_POSE)]
        transl = raw[..., FEATURE_LAYOUT.slice(side, FeatureGroup.TRANSL)]
        hands.append(forward_kinematics_matrices_torch(
            rot6d_to_matrix(orient), rot6d_to_matrix(pose.unflatten(-1, (-1, 6))), transl,
            default_skeleton(side)))
    return torch.stack(hands, dim=-3)


def fk_keypoint_features(raw: torch.Tensor) -> torch.Tensor:
    """Raw features whose keypoint groups are replaced by the wrist-relative forward
    kinematics of their own rotations and translations (default skeletons): the two
    descriptions of each hand made to agree. Same shape as ``raw``, (..., D)."""
    kp = fk_keypoints(raw)  # (..., 2, 21, 3)
    local = (kp - kp[..., :1, :]).flatten(-3)  # left hand's 63 values, then the right's
    out = raw.clone()
    out[..., KEYPOINT_DIMS.to(raw.device)] = local.to(raw.dtype)
    return out


def world_keypoints(raw: torch.Tensor) -> torch.Tensor:
    """(B, T, 2, 21, 3) world keypoints stored in raw features: wrist-relative keypoints
    placed at the MANO translation (the wrist, as the skeletons' rest wrist is the origin)."""
    hands = []
    for side in HandSide:
        transl = raw[..., FEATURE_LAYOUT.slice(side, FeatureGroup.TRANSL)]
        rel = raw[..., FEATURE_LAYOUT.slice(side, FeatureGroup.KEYPOINTS)].unflatten(-1, (-1, 3))
        hands.append(transl[..., None, :] + rel)  # (B, T, 21, 3)
    return torch.stack(hands, dim=-3)


def contact_distances(kp: torch.Tensor) -> torch.Tensor:
    """Distances of the contact-consistency loss, flattened per frame: (B, T, 441 + 2 x 80)
    (left-right keypoint pairs; each fingertip to the other fingers' keypoints)."""
    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a[..., :, None, :] - b[..., None, :, :]).pow(2).sum(-1) + 1e-12).sqrt()

    between = dist(kp[..., 0, :, :], kp[..., 1, :, :]).flatten(-2)  # (B, T, 441)
    tips = kp[..., list(_TIPS), :]  # (B, T, 2, 5, 3)
    same = dist(tips, kp)[..., _OTHER_FINGER.to(kp.device)]  # (B, T, 2, 80)
    return torch.cat([between, same.flatten(-2)], dim=-1)
