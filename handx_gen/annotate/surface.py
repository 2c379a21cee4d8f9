"""A hand surface proxy built from keypoints, signed distances between its parts, contacts.

The proxy approximates the skin of one hand by sphere-swept primitives, all derived from the 21
keypoints (so it works on tracked keypoints as well as on MANO/FK output):

* **capsules** (a segment swept by a sphere): one per finger segment, 15 per hand. Fingers:
  MCP-PIP and PIP-DIP (the shaft part) and DIP-fingertip (the tip part); thumb: CMC-MCP (the
  first metacarpal under the thenar eminence, which belongs to the palm: :attr:`HandPart.PALM`),
  MCP-IP (shaft) and IP-fingertip (tip). A fingertip keypoint lies on the skin at the end of
  the finger, so the distal capsule's segment stops one radius short of it;
* **lozenges** (a planar convex quadrilateral swept by a sphere): the palm slab between the
  wrist and the knuckles (index and little MCP), split into a palmar half (:attr:`HandPart.PALM`)
  and a dorsal half (:attr:`HandPart.BACK`): each is the quad shifted by half the slab's half
  thickness towards its side and swept by a sphere of that radius, so together they fill a slab
  of the full thickness whose faces lie ``palm_half_thickness`` from the mid plane.

Sizes (radii at the reference hand length of 0.185 m, wrist to middle fingertip, scaled with the
hand's length measured from its keypoints) are modelling choices close to published hand
anthropometry: finger breadths at the proximal joints of 17-21 mm tapering to 14-16 mm at the
distal joints (so radii of about 9.5 mm down to 7 mm; the little finger thinner, the thumb
thicker), a hand thickness at the metacarpals of about 27 mm, and a wrist breadth of about
58 mm (Garrett 1971, "The adult human hand: some anthropometric and biomechanical
considerations", Human Factors 13(2); Greiner 1991, USARIEM TR-92/011).

Distances are signed: the distance between the two surfaces, negative when they overlap (then
its magnitude is the penetration depth, exact while the primitives' core segments and quads do
not cross; beyond that it saturates at the sum of the radii). Everything is vectorised over
leading dimensions (frames, or frames and hands).

Contacts (:class:`ContactConfig`): two parts touch when their surface distance is at most
``touch_gap_m``. The reference-point thresholds of HandX (fingertip-fingertip 2 cm,
fingertip-palm 2.5 cm, palm-palm 4 cm between fingertip keypoints and palm centres) are kept in
the same config for metrics comparable with HandX (:func:`reference_contact_matrix`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from handx_gen.errors import ConfigError, HandModelError
from handx_gen.hand.parts import FINGER_PARTS, FINGERTIP_PARTS, HandPart
from handx_gen.hand.topology import (
    KEYPOINT_PARENTS,
    NUM_KEYPOINTS,
    Finger,
    HandSide,
    finger_keypoints,
)

__all__ = [
    'CAPSULE_PARTS',
    'HAND_PARTS',
    'LOZENGE_PARTS',
    'REFERENCE_HAND_LENGTH_M',
    'SELF_CONTACT_PAIRS',
    'ContactConfig',
    'HandSurface',
    'PartDistance',
    'bone_distance',
    'contact_intervals',
    'contact_matrix',
    'frames_of',
    'hand_surface',
    'inter_hand_distance',
    'inter_hand_overlaps',
    'inter_hand_penetration',
    'intra_hand_penetration',
    'near_frames',
    'part_distance',
    'part_distance_matrix',
    'reference_contact_matrix',
]

REFERENCE_HAND_LENGTH_M = 0.185  # the hand length the sizes below are given for

# All parts in a fixed order: the rows and columns of the part matrices.
HAND_PARTS: tuple[HandPart, ...] = tuple(HandPart)
_PART_INDEX = {part: i for i, part in enumerate(HAND_PARTS)}

# Capsule radii in metres at the reference hand length, per finger: (proximal, middle,
# distal) segment; for the thumb (metacarpal with the thenar eminence, proximal, distal).
_CAPSULE_RADII_M: dict[Finger, tuple[float, float, float]] = {
    Finger.THUMB: (0.0100, 0.0105, 0.0090),
    Finger.INDEX: (0.0095, 0.0085, 0.0075),
    Finger.MIDDLE: (0.0100, 0.0090, 0.0075),
    Finger.RING: (0.0095, 0.0085, 0.0070),
    Finger.LITTLE: (0.0085, 0.0075, 0.0065),
}
# Palm slab: half thickness (mid plane to the palmar or dorsal face) and the half width of its
# proximal edge at the wrist (of the core quad; the rims add half the half thickness).
_PALM_HALF_THICKNESS_M = 0.0135
_WRIST_HALF_WIDTH_M = 0.022

# Capsules in order: per finger (thumb to little) its three segments, base to tip.
CAPSULE_PARTS: tuple[HandPart, ...] = tuple(
    part for finger in Finger
    for part in ((HandPart.PALM if finger == Finger.THUMB else FINGER_PARTS[finger]),
                 FINGER_PARTS[finger], FINGERTIP_PARTS[finger]))
_CAPSULE_STARTS = np.array([k for f in Finger for k in finger_keypoints(f)[:3]])  # (15,)
_CAPSULE_ENDS = np.array([k for f in Finger for k in finger_keypoints(f)[1:]])  # (15,)
_CAPSULE_IS_DISTAL = np.array([i % 3 == 2 for i in range(15)])
_CAPSULE_REF_RADII = np.array([r for f in Finger for r in _CAPSULE_RADII_M[f]])  # (15,)
LOZENGE_PARTS: tuple[HandPart, ...] = (HandPart.PALM, HandPart.BACK)

# Contacts within one hand that count as events (HandX's): the thumb tip on another fingertip.
# Other pairs within a hand touch all the time (neighbouring fingers) or are a posture (curled
# fingertips on the palm in a fist).
SELF_CONTACT_PAIRS: tuple[tuple[HandPart, HandPart], ...] = tuple(
    (HandPart.THUMB_TIP, FINGERTIP_PARTS[f]) for f in Finger if f != Finger.THUMB)

_WRIST = 0
_INDEX_MCP, _MIDDLE_MCP, _RING_MCP, _LITTLE_MCP = (finger_keypoints(f)[0] for f in (
    Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE))
_MIDDLE_CHAIN = (_WRIST,) + finger_keypoints(Finger.MIDDLE)
_TIPS = np.array([finger_keypoints(f)[3] for f in Finger])  # (5,)
_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class ContactConfig:
    """When two hand parts count as touching; shared by the synthesizer and the features.

    Attributes:
        touch_gap_m: 0.005 m. Two parts touch when the signed distance between their surfaces
            (:func:`part_distance`) is at most this. The proxy's radii are population values,
            and fitted or tracked hands are off by a few mm, so touching skin measures 0 to a
            few mm apart (or overlaps a little).
        apart_gap_m: 0.015 m. Parts further apart than this are clearly not touching; between
            ``touch_gap_m`` and this the state is ambiguous (use it as the release threshold
            of a hysteresis when detecting contact events).
        fingertip_fingertip_m: 0.02 m, HandX's reference criterion: fingertip keypoints closer
            than this touch (used for thumb-to-fingertip labels within one hand as well).
        fingertip_palm_m: 0.025 m, HandX's reference criterion between a fingertip keypoint and
            the centre of the other hand's palm.
        palm_palm_m: 0.04 m, HandX's reference criterion between the two palm centres.
        min_contact_s: 0.05 s. A contact event lasts at least this long (2 frames at 30 fps);
            shorter grazes are ignored.
        hand_length_m: Hand length (wrist to middle fingertip) that sizes the surface proxy;
            ``None`` measures it from the keypoints.
    """

    touch_gap_m: float = 0.005
    apart_gap_m: float = 0.015
    fingertip_fingertip_m: float = 0.02
    fingertip_palm_m: float = 0.025
    palm_palm_m: float = 0.04
    min_contact_s: float = 0.05
    hand_length_m: float | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == 'hand_length_m' and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ConfigError(f'contact config {field.name!r} must be a finite number, '
                                  f'got {value!r}')
            if field.name not in ('touch_gap_m', 'min_contact_s') and value <= 0.0:
                raise ConfigError(f'contact config {field.name!r} must be > 0, got {value!r}')
            object.__setattr__(self, field.name, float(value))
        if self.apart_gap_m < self.touch_gap_m:
            raise ConfigError(f'contact config apart_gap_m ({self.apart_gap_m}) must be >= '
                              f'touch_gap_m ({self.touch_gap_m})')


@dataclasses.dataclass(frozen=True, eq=False)
class HandSurface:
    """The surface proxy of one hand over leading dimensions ``...`` (frames).

    Attributes:
        side: Which hand.
        keypoints: (..., 21, 3) the keypoints it was built from.
        capsule_start: (..., 15, 3) capsule segment starts, order of :data:`CAPSULE_PARTS`.
        capsule_end: (..., 15, 3) capsule segment ends.
        capsule_radius: (..., 15) radii.
        lozenge: (..., 2, 4, 3) the palm (row 0) and back (row 1) quads, corners in order.
        lozenge_radius: (...,) the lozenges' sphere radius (half the palm's half thickness).
        palm_normal: (..., 3) unit normal of the palm plane pointing out of the palm (palmar).
        palm_centre: (..., 3) centre of the palm on the mid plane (HandX's palm reference).
        scale: (...,) hand length over :data:`REFERENCE_HAND_LENGTH_M`.
    """

    side: HandSide
    keypoints: np.ndarray
    capsule_start: np.ndarray
    capsule_end: np.ndarray
    capsule_radius: np.ndarray
    lozenge: np.ndarray
    lozenge_radius: np.ndarray
    palm_normal: np.ndarray
    palm_centre: np.ndarray
    scale: np.ndarray

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.keypoints.shape[:-2]

    @property
    def palm_half_thickness(self) -> np.ndarray:
        """(...,) distance from the palm's mid plane to its palmar (and dorsal) face."""
        return 2.0 * self.lozenge_radius

    @property
    def tips(self) -> np.ndarray:
        """(..., 5, 3) fingertip keypoints, thumb to little."""
        return self.keypoints[..., _TIPS, :]


class PartDistance(NamedTuple):
    """Signed surface distance between two parts and where it is attained.

    Attributes:
        distance: (...,) metres, negative where the parts overlap.
        point_a: (..., 3) the closest point on part a's surface.
        point_b: (..., 3) the closest point on part b's surface.
    """

    distance: np.ndarray
    point_a: np.ndarray
    point_b: np.ndarray


def hand_surface(keypoints: np.ndarray, side: HandSide | int,
                 hand_length_m: float | None = None) -> HandSurface:
    """Build the surface proxy of one hand.

    Args:
        keypoints: (..., 21, 3) keypoints in metres (keypoint order of
            :mod:`handx_gen.hand.topology`), finite.
        side: Which hand (or its index, 0 left, 1 right); it decides which side of the palm is
            palmar.
        hand_length_m: Size of the proxy as a hand length (wrist to middle fingertip);
            ``None`` measures it per frame along the middle finger's keypoint chain.

    Returns:
        The surface over the same leading dimensions.
    """
    try:
        side = HandSide(int(side))
    except (TypeError, ValueError):
        raise HandModelError(f'side must be a HandSide (0 left, 1 right), got {side!r}') from None
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise HandModelError(f'hand_surface: keypoints must have shape (..., 21, 3), got shape '
                             f'{kp.shape}')
    if not np.all(np.isfinite(kp)):
        raise HandModelError('hand_surface: keypoints contain non-finite values')
    if hand_length_m is None:
        chain = kp[..., _MIDDLE_CHAIN, :]
        length = np.linalg.norm(np.diff(chain, axis=-2), axis=-1).sum(-1)  # (...,)
    else:
        length = np.full(kp.shape[:-2], float(hand_length_m))
    scale = length / REFERENCE_HAND_LENGTH_M  # (...,)

    radius = scale[..., None] * _CAPSULE_REF_RADII  # (..., 15)
    start = kp[..., _CAPSULE_STARTS, :]  # (..., 15, 3)
    end = kp[..., _CAPSULE_ENDS, :].copy()
    bone = end - start
    bone_len = np.linalg.norm(bone, axis=-1, keepdims=True)  # (..., 15, 1)
    # The distal capsules end one radius short of the fingertip (keypoint on the skin), but keep
    # at least a fifth of the bone.
    pull = np.minimum(radius[..., None], 0.8 * bone_len) / np.maximum(bone_len, _EPS)
    end = np.where(_CAPSULE_IS_DISTAL[:, None], end - pull * bone, end)

    wrist = kp[..., _WRIST, :]
    index_mcp = kp[..., _INDEX_MCP, :]
    little_mcp = kp[..., _LITTLE_MCP, :]
    middle_mcp = kp[..., _MIDDLE_MCP, :]
    side_sign = 1.0 if side == HandSide.RIGHT else -1.0
    across = index_mcp - little_mcp  # radial direction across the knuckles
    along = middle_mcp - wrist
    normal = side_sign * np.cross(across, along)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), _EPS)  # (..., 3)
    radial = across - np.sum(across * along, -1, keepdims=True) / np.maximum(
        np.sum(along * along, -1, keepdims=True), _EPS) * along
    radial /= np.maximum(np.linalg.norm(radial, axis=-1, keepdims=True), _EPS)
    half_width = (scale * _WRIST_HALF_WIDTH_M)[..., None]
    # Core quad on the mid plane, corners in order around it; the MCP corners are projected
    # onto the plane through the wrist.
    corners = np.stack([wrist + half_width * radial, index_mcp, little_mcp,
                        wrist - half_width * radial], axis=-2)  # (..., 4, 3)
    offset = np.sum((corners - wrist[..., None, :]) * normal[..., None, :], -1, keepdims=True)
    corners = corners - offset * normal[..., None, :]
    half_thickness = scale * _PALM_HALF_THICKNESS_M  # (...,)
    shift = (0.5 * half_thickness)[..., None, None] * normal[..., None, :]  # (..., 1, 3)
    lozenge = np.stack([corners + shift, corners - shift], axis=-3)  # (..., 2, 4, 3)
    centre = corners.mean(axis=-2)
    return HandSurface(side=side, keypoints=kp, capsule_start=start, capsule_end=end,
                       capsule_radius=radius, lozenge=lozenge,
                       lozenge_radius=0.5 * half_thickness, palm_normal=normal,
                       palm_centre=centre, scale=scale)


# ------------------------------------------------------------------------- geometry kernels


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _norm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(_dot(a, a))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _point_segment(q: np.ndarray, a: np.ndarray, b: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points to segments and the closest point on the segment (broadcast)."""
    ab = b - a
    t = np.clip(_dot(q - a, ab) / np.maximum(_dot(ab, ab), _EPS), 0.0, 1.0)
    closest = a + t[..., None] * ab
    return _norm(q - closest), closest


def _segment_segment(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest points between segments ``p0-p1`` and ``q0-q1`` (broadcast over ``...``).

    Returns:
        (distance (...,), point on p (..., 3), point on q (..., 3)).
    """
    d1 = p1 - p0
    d2 = q1 - q0
    r = p0 - q0
    a = np.maximum(_dot(d1, d1), _EPS)
    e = np.maximum(_dot(d2, d2), _EPS)
    f = _dot(d2, r)
    c = _dot(d1, r)
    b = _dot(d1, d2)
    denom = a * e - b * b
    s = np.where(denom > 1e-14 * a * e, np.clip((b * f - c * e) / np.maximum(denom, _EPS),
                                                0.0, 1.0), 0.0)
    t = (b * s + f) / e
    s = np.where(t < 0.0, np.clip(-c / a, 0.0, 1.0), np.where(t > 1.0, np.clip((b - c) / a,
                                                                               0.0, 1.0), s))
    t = np.clip(t, 0.0, 1.0)
    cp = p0 + s[..., None] * d1
    cq = q0 + t[..., None] * d2
    return _norm(cp - cq), cp, cq


def _quad_normal(quad: np.ndarray) -> np.ndarray:
    n = _cross(quad[..., 2, :] - quad[..., 0, :], quad[..., 3, :] - quad[..., 1, :])
    return n / np.maximum(_norm(n)[..., None], _EPS)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[..., index, :]`` per leading element: values (..., k, 3), index (...,)."""
    return np.take_along_axis(values, index[..., None, None], axis=-2)[..., 0, :]


def _inside_quad(x: np.ndarray, quad: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Whether points ``x`` (..., 3) on the quad's plane lie inside the convex quad."""
    edges = np.roll(quad, -1, axis=-2) - quad  # (..., 4, 3)
    signs = _dot(_cross(edges, x[..., None, :] - quad), normal[..., None, :])  # (..., 4)
    return np.all(signs >= 0.0, -1) | np.all(signs <= 0.0, -1)


def _point_quad(q: np.ndarray, quad: np.ndarray, normal: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points (..., 3) to filled convex quads (..., 4, 3) and the closest
    point on them."""
    height = _dot(q - quad[..., 0, :], normal)
    proj = q - height[..., None] * normal
    inside = _inside_quad(proj, quad, normal)
    dist, pts = _point_segment(q[..., None, :], quad, np.roll(quad, -1, axis=-2))  # (..., 4)
    k = np.argmin(dist, axis=-1)
    edge_best = np.take_along_axis(dist, k[..., None], -1)[..., 0]
    best = np.where(inside, np.abs(height), edge_best)
    best_pt = np.where(inside[..., None], proj, _take(pts, k))
    return best, best_pt


def _segment_quad(p0: np.ndarray, p1: np.ndarray, quad: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest points between segments and filled convex quads (broadcast).

    Exact: a segment that crosses the quad is at distance 0; otherwise the closest pair has
    an endpoint of the segment against the quad, or the segment against one of its edges.
    """
    normal = _quad_normal(quad)  # (..., 3)
    ends = np.stack(np.broadcast_arrays(p0, p1), axis=-2)  # (..., 2, 3)
    shape = np.broadcast_shapes(ends.shape[:-2], quad.shape[:-2])
    ends = np.broadcast_to(ends, shape + (2, 3))
    quad = np.broadcast_to(quad, shape + (4, 3))
    normal = np.broadcast_to(normal, shape + (3,))
    d_end, q_end = _point_quad(ends, quad[..., None, :, :], normal[..., None, :])  # (..., 2)
    d_edge, a_edge, b_edge = _segment_segment(ends[..., None, 0, :], ends[..., None, 1, :],
                                              quad, np.roll(quad, -1, axis=-2))  # (..., 4)
    dist = np.concatenate([d_end, d_edge], axis=-1)  # (..., 6)
    on_seg = np.concatenate([ends, a_edge], axis=-2)  # (..., 6, 3)
    on_quad = np.concatenate([q_end, b_edge], axis=-2)
    k = np.argmin(dist, axis=-1)
    best = np.take_along_axis(dist, k[..., None], -1)[..., 0]
    pa, pb = _take(on_seg, k), _take(on_quad, k)
    # Crossing: the segment pierces the plane inside the quad.
    h = _dot(ends - quad[..., None, 0, :], normal[..., None, :])  # (..., 2)
    h0, h1 = h[..., 0], h[..., 1]
    crosses = (h0 * h1 <= 0.0) & (h0 != h1)
    t = np.clip(h0 / np.where(h0 != h1, h0 - h1, 1.0), 0.0, 1.0)
    x = ends[..., 0, :] + t[..., None] * (ends[..., 1, :] - ends[..., 0, :])
    pierce = crosses & _inside_quad(x, quad, normal)
    best = np.where(pierce, 0.0, best)
    pa = np.where(pierce[..., None], x, pa)
    pb = np.where(pierce[..., None], x, pb)
    return best, pa, pb


def _quad_quad(qa: np.ndarray, qb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest points between two filled convex quads (broadcast): every edge of each
    against the other quad (exact, since two crossing quads have an edge of one through the
    other)."""
    shape = np.broadcast_shapes(qa.shape[:-2], qb.shape[:-2])
    qa = np.broadcast_to(qa, shape + (4, 3))
    qb = np.broadcast_to(qb, shape + (4, 3))
    d1, a1, b1 = _segment_quad(qa, np.roll(qa, -1, axis=-2), qb[..., None, :, :])  # (..., 4)
    d2, b2, a2 = _segment_quad(qb, np.roll(qb, -1, axis=-2), qa[..., None, :, :])
    dist = np.concatenate([d1, d2], axis=-1)  # (..., 8)
    k = np.argmin(dist, axis=-1)
    best = np.take_along_axis(dist, k[..., None], -1)[..., 0]
    return (best, _take(np.concatenate([a1, a2], axis=-2), k),
            _take(np.concatenate([b1, b2], axis=-2), k))


def _surface_points(dist: np.ndarray, ca: np.ndarray, cb: np.ndarray, ra: np.ndarray,
                    rb: np.ndarray, fallback: np.ndarray) -> PartDistance:
    """Signed surface distance and surface points from core distance and core points."""
    direction = cb - ca
    norm = np.linalg.norm(direction, axis=-1, keepdims=True)
    u = np.where(norm > 1e-9, direction / np.maximum(norm, 1e-9), fallback)
    return PartDistance(dist - ra - rb, ca + ra[..., None] * u, cb - rb[..., None] * u)


# ------------------------------------------------------------------------- part distances


def _primitives(surface: HandSurface, part: HandPart):
    """The part's primitives: ('capsule', start, end, radius) or ('lozenge', quad, radius)."""
    out = []
    if part in LOZENGE_PARTS:
        row = LOZENGE_PARTS.index(part)
        out.append(('lozenge', surface.lozenge[..., row, :, :], surface.lozenge_radius))
    return out + [('capsule', surface.capsule_start[..., i, :], surface.capsule_end[..., i, :],
             surface.capsule_radius[..., i])
            for i, p in enumerate(CAPSULE_PARTS) if p == part]


def _primitive_pair(pa, pb) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                     np.ndarray]:
    """Core distance, core points and radii of two primitives."""
    if pa[0] == 'capsule' and pb[0] == 'capsule':
        d, a, b = _segment_segment(pa[1], pa[2], pb[1], pb[2])
        return d, a, b, pa[3], pb[3]
    if pa[0] == 'capsule':
        d, a, b = _segment_quad(pa[1], pa[2], pb[1])
        return d, a, b, pa[3], pb[2]
    if pb[0] == 'capsule':
        d, b, a = _segment_quad(pb[1], pb[2], pa[1])
        return d, a, b, pa[2], pb[3]
    d, a, b = _quad_quad(pa[1], pb[1])
    return d, a, b, pa[2], pb[2]


def part_distance(surface_a: HandSurface, part_a: HandPart, surface_b: HandSurface,
                  part_b: HandPart) -> PartDistance:
    """Signed distance between the surfaces of two parts, and the closest points.

    The two surfaces' leading dimensions broadcast (e.g. one frame against many). Within one
    hand (``surface_a is surface_b``) the distance between neighbouring parts (a finger's tip
    and shaft, the palm and the back) is meaningless: they are joined.

    Args:
        surface_a: Surface of the first hand.
        part_a: Its part.
        surface_b: Surface of the second hand (may be the first).
        part_b: Its part.

    Returns:
        :class:`PartDistance` over the broadcast leading dimensions; negative distances are
        penetration depths.
    """
    part_a, part_b = HandPart(part_a), HandPart(part_b)
    best = None
    for pa in _primitives(surface_a, part_a):
        for pb in _primitives(surface_b, part_b):
            d, ca, cb, ra, rb = _primitive_pair(pa, pb)
            core = (d - ra - rb, ca, cb, np.broadcast_to(ra, d.shape),
                    np.broadcast_to(rb, d.shape))
            if best is None:
                best = core
            else:
                closer = core[0] < best[0]
                best = tuple(np.where(closer if x.ndim == closer.ndim else closer[..., None],
                                      x, y) for x, y in zip(core, best, strict=True))
    signed, ca, cb, ra, rb = best
    # Where the cores touch, push the surface points apart along a palm normal (the first
    # lozenge's) or any fixed direction.
    fallback = np.broadcast_to(surface_a.palm_normal, ca.shape)
    return _surface_points(signed + ra + rb, ca, cb, ra, rb, fallback)


def part_distance_matrix(surface_a: HandSurface, surface_b: HandSurface) -> np.ndarray:
    """Signed surface distances between every part of ``a`` and every part of ``b``.

    Args:
        surface_a: One hand.
        surface_b: The other hand (or the same hand; then the diagonal and the entries of
            joined parts are meaningless).

    Returns:
        (..., 12, 12) metres, rows the parts of ``a`` and columns those of ``b`` in the order
        of :data:`HAND_PARTS`.
    """
    prim = _primitive_distances(surface_a, surface_b)  # (..., 17, 17)
    rows = _reduce_parts(prim, axis=-2)  # (..., 12, 17)
    return _reduce_parts(rows, axis=-1)  # (..., 12, 12)


def _primitive_distances(sa: HandSurface, sb: HandSurface) -> np.ndarray:
    """(..., 17, 17) signed distances between primitives: 15 capsules, then palm and back."""
    return _primitive_cores(sa, sb)[0]


def _primitive_cores(sa: HandSurface, sb: HandSurface
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 17, 17) signed distances between primitives (15 capsules, then palm and back),
    and the closest points of their cores, on ``a``'s and on ``b``'s (..., 17, 17, 3)."""
    a0, a1 = sa.capsule_start[..., :, None, :], sa.capsule_end[..., :, None, :]
    b0, b1 = sb.capsule_start[..., None, :, :], sb.capsule_end[..., None, :, :]
    ra, rb = sa.capsule_radius, sb.capsule_radius
    cc, cc_a, cc_b = _segment_segment(a0, a1, b0, b1)
    cc = cc - ra[..., :, None] - rb[..., None, :]
    qa = sa.lozenge[..., None, :, :, :]  # (..., 1, 2, 4, 3)
    qb = sb.lozenge[..., None, :, :, :]
    la, lb = sa.lozenge_radius[..., None, None], sb.lozenge_radius[..., None, None]
    cq, cq_a, cq_b = _segment_quad(a0, a1, qb)
    cq = cq - ra[..., :, None] - lb  # (..., 15, 2)
    qc, qc_b, qc_a = _segment_quad(sb.capsule_start[..., :, None, :],
                                   sb.capsule_end[..., :, None, :], qa)
    qc = qc - rb[..., :, None] - la  # (..., 15, 2) b-capsule x a-lozenge
    qq, qq_a, qq_b = _quad_quad(sa.lozenge[..., :, None, :, :], sb.lozenge[..., None, :, :, :])
    qq = qq - la - lb  # (..., 2, 2)

    def assemble(c_c: np.ndarray, c_q: np.ndarray, q_c: np.ndarray, q_q: np.ndarray,
                 tail: tuple[int, ...]) -> np.ndarray:
        lead = np.broadcast_shapes(c_c.shape[:c_c.ndim - 2 - len(tail)],
                                   q_q.shape[:q_q.ndim - 2 - len(tail)])
        top = np.concatenate([np.broadcast_to(c_c, lead + (15, 15) + tail),
                              np.broadcast_to(c_q, lead + (15, 2) + tail)], axis=len(lead) + 1)
        bottom = np.concatenate([np.broadcast_to(np.swapaxes(q_c, len(lead), len(lead) + 1),
                                                 lead + (2, 15) + tail),
                                 np.broadcast_to(q_q, lead + (2, 2) + tail)],
                                axis=len(lead) + 1)
        return np.concatenate([top, bottom], axis=len(lead))

    return (assemble(cc, cq, qc, qq, ()), assemble(cc_a, cq_a, qc_a, qq_a, (3,)),
            assemble(cc_b, cq_b, qc_b, qq_b, (3,)))


def inter_hand_overlaps(surface_a: HandSurface, surface_b: HandSurface
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances between every primitive of one hand and every primitive of the
    other, and the directions that would separate each pair.

    Returns:
        (..., 17, 17) signed surface distances, metres (rows ``a``'s 15 capsules then palm and
        back, columns ``b``'s), and (..., 17, 17, 3) unit vectors from the closest point of
        ``a``'s primitive core to that of ``b``'s: moving ``b`` along one (or ``a`` against
        it) opens that pair's gap by as much, while the cores do not cross. Where they cross
        (the direction is undefined) it is the direction from ``a``'s palm centre to ``b``'s.
    """
    signed, core_a, core_b = _primitive_cores(surface_a, surface_b)
    direction = core_b - core_a
    norm = np.linalg.norm(direction, axis=-1, keepdims=True)
    centres = surface_b.palm_centre - surface_a.palm_centre  # (..., 3)
    fallback = centres / np.maximum(np.linalg.norm(centres, axis=-1, keepdims=True), _EPS)
    fallback = np.broadcast_to(fallback[..., None, None, :], direction.shape)
    return signed, np.where(norm > 1e-6, direction / np.maximum(norm, _EPS), fallback)


# Primitive index -> part index, for the reduction.
_PRIMITIVE_PART = np.array([_PART_INDEX[p] for p in CAPSULE_PARTS + LOZENGE_PARTS])


def _reduce_parts(values: np.ndarray, axis: int) -> np.ndarray:
    values = np.moveaxis(values, axis, -1)
    out = np.full(values.shape[:-1] + (len(HAND_PARTS),), np.inf)
    for prim, part in enumerate(_PRIMITIVE_PART):
        out[..., part] = np.minimum(out[..., part], values[..., prim])
    return np.moveaxis(out, -1, axis)


def contact_matrix(surface_a: HandSurface, surface_b: HandSurface,
                   config: ContactConfig | None = None) -> np.ndarray:
    """Which parts of ``a`` touch which parts of ``b`` (surface distance <= touch gap).

    Returns:
        (..., 12, 12) bool, rows the parts of ``a``, columns those of ``b``
        (:data:`HAND_PARTS` order).
    """
    config = config or ContactConfig()
    return part_distance_matrix(surface_a, surface_b) <= config.touch_gap_m


def contact_intervals(distance: np.ndarray, fps: float, config: ContactConfig | None = None
                      ) -> list[tuple[int, int]]:
    """Contact events of one part pair from its surface distance over time.

    Hysteresis: an event starts on a frame with ``distance <= touch_gap_m`` and lasts while
    the distance stays at most ``apart_gap_m``; its frames are those from its first to its last
    frame within ``touch_gap_m`` (the approach and release tails, still above the touch gap,
    are left out). Events shorter than ``min_contact_s`` are dropped.

    Args:
        distance: (T,) signed surface distances of the pair, metres.
        fps: Frame rate.
        config: Thresholds.

    Returns:
        Half-open frame ranges ``[start, stop)`` in time order.
    """
    config = config or ContactConfig()
    distance = np.asarray(distance, dtype=np.float64)
    if distance.ndim != 1:
        raise HandModelError(f'contact_intervals: distance must have shape (T,), got shape '
                             f'{distance.shape}')
    touching = distance <= config.touch_gap_m
    near = distance <= config.apart_gap_m
    min_frames = max(1, int(math.ceil(config.min_contact_s * fps - 1e-9)))
    events = []
    # Runs of 'near' frames that contain a touching frame; trimmed to the touching frames.
    padded = np.concatenate([[False], near, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        inside = np.flatnonzero(touching[start:stop])
        if inside.size == 0:
            continue
        first, last = start + int(inside[0]), start + int(inside[-1]) + 1
        if last - first >= min_frames:
            events.append((first, last))
    return events


def reference_contact_matrix(surface_a: HandSurface, surface_b: HandSurface,
                             config: ContactConfig | None = None) -> np.ndarray:
    """HandX's reference-point contact criterion between two hands.

    Fingertip-fingertip pairs compare fingertip keypoints with ``fingertip_fingertip_m``,
    fingertip-palm pairs (either way) a fingertip keypoint and the palm centre with
    ``fingertip_palm_m``, palm-palm the two palm centres with ``palm_palm_m``; other pairs
    are False.

    Returns:
        (..., 12, 12) bool in :data:`HAND_PARTS` order.
    """
    config = config or ContactConfig()
    ta, tb = surface_a.tips, surface_b.tips  # (..., 5, 3)
    ca, cb = surface_a.palm_centre, surface_b.palm_centre
    shape = np.broadcast_shapes(ta.shape[:-2], tb.shape[:-2])
    out = np.zeros(shape + (len(HAND_PARTS), len(HAND_PARTS)), dtype=bool)
    tip_rows = [_PART_INDEX[FINGERTIP_PARTS[f]] for f in Finger]
    palm = _PART_INDEX[HandPart.PALM]
    tt = np.linalg.norm(ta[..., :, None, :] - tb[..., None, :, :], axis=-1)  # (..., 5, 5)
    for i, row in enumerate(tip_rows):
        for j, col in enumerate(tip_rows):
            out[..., row, col] = tt[..., i, j] < config.fingertip_fingertip_m
        out[..., row, palm] = np.linalg.norm(ta[..., i, :] - cb, axis=-1) \
            < config.fingertip_palm_m
        out[..., palm, row] = np.linalg.norm(tb[..., i, :] - ca, axis=-1) \
            < config.fingertip_palm_m
    out[..., palm, palm] = np.linalg.norm(ca - cb, axis=-1) < config.palm_palm_m
    return out


_BONE_CHILD = np.arange(1, NUM_KEYPOINTS)
_BONE_PARENT = np.asarray(KEYPOINT_PARENTS[1:])


def bone_distance(keypoints_a: np.ndarray, keypoints_b: np.ndarray) -> np.ndarray:
    """Smallest distance between the keypoint bones (segments) of two hands.

    The quality filter (:mod:`handx_gen.data.filters`) judges interpenetration on these
    segments, so touching hands keep them apart by about two finger radii.

    Args:
        keypoints_a: (..., 21, 3) one hand.
        keypoints_b: (..., 21, 3) the other hand.

    Returns:
        (...,) metres.
    """
    a0 = np.asarray(keypoints_a)[..., _BONE_PARENT, None, :]
    a1 = np.asarray(keypoints_a)[..., _BONE_CHILD, None, :]
    b0 = np.asarray(keypoints_b)[..., None, _BONE_PARENT, :]
    b1 = np.asarray(keypoints_b)[..., None, _BONE_CHILD, :]
    return _segment_segment(a0, a1, b0, b1)[0].min(axis=(-2, -1))


def inter_hand_penetration(surface_a: HandSurface, surface_b: HandSurface) -> np.ndarray:
    """Deepest overlap between any part of one hand and any part of the other.

    Returns:
        (...,) penetration depth in metres, >= 0 (0 where the hands do not overlap).
    """
    return np.maximum(-_primitive_distances(surface_a, surface_b).min(axis=(-2, -1)), 0.0)


def inter_hand_distance(surface_a: HandSurface, surface_b: HandSurface, *,
                        within: float = math.inf) -> np.ndarray:
    """Smallest signed surface distance between any part of one hand and any part of the
    other.

    Args:
        surface_a, surface_b: The two hands, over the same frames (leading axis).
        within: Frames where no primitive pair can be this close (a bounding-sphere test)
            read ``+inf`` without the exact distances.

    Returns:
        (...,) metres, negative where the hands overlap.
    """
    if not math.isfinite(within):
        return _primitive_distances(surface_a, surface_b).min(axis=(-2, -1))
    shape = surface_a.keypoints.shape[:-2]
    near = near_frames(surface_a, surface_b, within).reshape(-1)
    out = np.full(near.shape, np.inf)
    index = np.flatnonzero(near)
    if index.size:
        flat_a, flat_b = (_flattened(s) for s in (surface_a, surface_b))
        out[index] = _primitive_distances(frames_of(flat_a, index), frames_of(flat_b, index)
                                          ).min(axis=(-2, -1))
    return out.reshape(shape)


def near_frames(surface_a: HandSurface, surface_b: HandSurface, within: float) -> np.ndarray:
    """(...,) whether some primitive pair of the two hands could be within ``within`` metres
    (their bounding spheres are); ``False`` guarantees every distance is larger."""
    centre_a, radius_a = _bounding_spheres(surface_a)  # (..., 17, 3), (..., 17)
    centre_b, radius_b = _bounding_spheres(surface_b)
    gap = np.linalg.norm(centre_a[..., :, None, :] - centre_b[..., None, :, :], axis=-1) \
        - radius_a[..., :, None] - radius_b[..., None, :]  # (..., 17, 17) lower bounds
    return gap.min(axis=(-2, -1)) <= within


def frames_of(surface: HandSurface, frames: np.ndarray) -> HandSurface:
    """The proxy restricted to some frames (indices into its leading axis)."""
    values = {field.name: getattr(surface, field.name) for field in dataclasses.fields(surface)}
    return HandSurface(**{name: value if name == 'side' else value[frames]
                          for name, value in values.items()})


def _flattened(surface: HandSurface) -> HandSurface:
    """The proxy with its leading dimensions flattened into one."""
    lead = len(surface.keypoints.shape) - 2
    values = {field.name: getattr(surface, field.name) for field in dataclasses.fields(surface)}
    return HandSurface(**{
        name: value if name == 'side' else np.reshape(value, (-1,) + np.shape(value)[lead:])
        for name, value in values.items()})


def _bounding_spheres(surface: HandSurface) -> tuple[np.ndarray, np.ndarray]:
    """Spheres enclosing each primitive of the proxy: 15 capsules, then palm and back."""
    start, end = surface.capsule_start, surface.capsule_end  # (..., 15, 3)
    capsule_centre = 0.5 * (start + end)
    capsule_radius = 0.5 * np.linalg.norm(end - start, axis=-1) + surface.capsule_radius
    quad = surface.lozenge  # (..., 2, 4, 3)
    quad_centre = quad.mean(axis=-2)  # (..., 2, 3)
    quad_radius = np.linalg.norm(quad - quad_centre[..., None, :], axis=-1).max(-1) \
        + surface.lozenge_radius[..., None]  # (..., 2)
    return (np.concatenate([capsule_centre, quad_centre], axis=-2),
            np.concatenate([capsule_radius, quad_radius], axis=-1))


# Within one hand: capsules of different fingers, and the fingertips against the palm.
_SAME_FINGER = np.repeat(np.arange(5), 3)
_INTRA_MASK = np.zeros((17, 17), dtype=bool)
_INTRA_MASK[:15, :15] = _SAME_FINGER[:, None] < _SAME_FINGER[None, :]
_INTRA_MASK[np.flatnonzero(_CAPSULE_IS_DISTAL), 15] = True
_INTRA_MASK[np.flatnonzero(_CAPSULE_IS_DISTAL)[1:], 16] = True  # finger (not thumb) tips: back


def intra_hand_penetration(surface: HandSurface) -> np.ndarray:
    """Deepest overlap within one hand: between segments of different fingers, and between a
    fingertip and the palm or back.

    Neighbouring fingers' proximal segments touch at the knuckles by construction (a mm or
    two); judge the result against a tolerance.

    Returns:
        (...,) penetration depth in metres, >= 0.
    """
    dist = _primitive_distances(surface, surface)  # (..., 17, 17)
    masked = np.where(_INTRA_MASK, dist, np.inf)
    return np.maximum(-masked.min(axis=(-2, -1)), 0.0)
