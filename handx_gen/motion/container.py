"""The bimanual motion container and its file format.

:class:`BimanualMotion` holds one clip of two-hand motion: per hand the MANO parameters
(global orientation, 15 joint rotations, translation, optional shape) and the 21 keypoints
derived from them, plus optional texts and an annotation. The left hand is index 0 in every
per-hand axis (:class:`~handx_gen.hand.topology.HandSide`).

Frames and conventions:

* World frame: right-handed, Z up, metres. Rotations are axis-angle in radians.
* MANO parameters follow smplx's MANO exactly (the canonical hand frame of SMPL-H's T-pose;
  ``hand_pose`` all zeros is the flat hand): the root rotates about the rest wrist joint
  ``J[0]``, then ``transl`` is added, so ``wrist_world = J[0] + transl`` at rest orientation.
  ``transl`` is therefore *not* the wrist position.
* ``keypoints`` are in the world frame, in the 21-keypoint order of
  :data:`~handx_gen.hand.topology.KEYPOINT_NAMES`.

One hand may be absent for the whole clip (a hand tracker that sees one hand): ``present``
(2,) bool says which hands the clip holds. An absent hand is a state of the motion, not
missing data: its arrays hold the *rest hand* (:func:`rest_hand`: flat, palm down, fingers
forward, its wrist on the canonical spot of its side, still), whatever was given for it, so
array code runs unchanged and every frame of it is the same; what it must not do is make
claims about that hand, which is why stages that judge, describe, generate or retarget a hand
read ``present`` first. A hand that is absent only in some frames is a dropout, a matter of
the reader (``handx data convert --fill-invalid``), not of this container.

Dtypes: keypoints are stored as float32 (as in the file format); MANO parameters and betas as
float64, so that rotation conversions, interpolation and forward kinematics lose no precision
before features are built.

Files: ``handx-motion/1`` ``.npz`` (see :meth:`BimanualMotion.save`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from handx_gen.errors import MotionError, MotionFormatError
from handx_gen.hand import kinematics, rotations
from handx_gen.hand.skeleton import HandSkeleton, default_skeleton
from handx_gen.hand.topology import (
    KEYPOINT_FROM_MANO_JOINT,
    KEYPOINT_PARENTS,
    NUM_KEYPOINTS,
    NUM_POSE_JOINTS,
    HandSide,
)
from handx_gen.npz import MAX_JSON_BYTES, NpzArchive, check_entries, decode_json, write_npz
from handx_gen.rates import MAX_FRAMES, check_clip_size, check_fps

__all__ = [
    'MOTION_FORMAT',
    'BimanualMotion',
    'RestHand',
    'rest_hand',
    'swap_left_right_words',
]

MOTION_FORMAT = 'handx-motion/1'
NUM_BETAS = 10

PathLike = str | os.PathLike

# Time positions closer than this (in source frames) to a source frame are snapped onto it,
# so resampling at the original frame times reproduces the original values exactly.
_SNAP_FRAMES = 1e-6



class BimanualMotion:
    """One clip of two-hand motion at a fixed frame rate.

    Immutable in practice: the constructor validates and copies every input, and the stored
    arrays are read-only. Methods that change the motion return a new instance.

    Attributes:
        fps: Frames per second, > 0 and finite.
        global_orient: (T, 2, 3) float64 root rotation per hand, axis-angle, radians.
        hand_pose: (T, 2, 15, 3) float64 joint rotations, axis-angle, MANO joint order.
        transl: (T, 2, 3) float64 MANO translation, metres (not the wrist position).
        keypoints: (T, 2, 21, 3) float32 world keypoints, metres, 21-keypoint order.
        betas: (2, 10) float64 MANO shape per hand, or ``None``.
        texts: Descriptions of the clip (possibly empty).
        annotation: JSON-compatible dict, or ``None``. Stored in its JSON form (a JSON round
            trip), so tuples read back as lists and keys as strings; every access returns a
            fresh copy.
        present: (2,) bool, read-only: which hands the clip holds (module doc). An absent
            hand's parameters and keypoints are the :func:`rest_hand` in every frame.
    """

    __slots__ = (
        '_fps', '_global_orient', '_hand_pose', '_transl', '_keypoints', '_betas', '_texts',
        '_annotation_json', '_present',
    )

    def __init__(
        self,
        fps: float,
        global_orient: np.ndarray,
        hand_pose: np.ndarray,
        transl: np.ndarray,
        keypoints: np.ndarray,
        *,
        betas: np.ndarray | None = None,
        texts: Iterable[str] | str = (),
        annotation: Mapping[str, Any] | None = None,
        present: Sequence[bool] | np.ndarray | None = None,
    ) -> None:
        """Validate and copy a motion.

        Args:
            fps: Frame rate, in [MIN_FPS, MAX_FPS] (:mod:`handx_gen.rates`).
            global_orient: (T, 2, 3) axis-angle root rotations.
            hand_pose: (T, 2, 15, 3) axis-angle joint rotations, MANO joint order.
            transl: (T, 2, 3) MANO translations, metres.
            keypoints: (T, 2, 21, 3) world keypoints, metres.
            betas: Optional (2, 10) MANO shape coefficients, left first.
            texts: Descriptions; a single string counts as one text.
            annotation: Optional JSON-compatible mapping.
            present: (2,) bools, left first: which hands the clip holds; default both. At
                least one. What is given for an absent hand (anything, NaN included) is
                replaced by the :func:`rest_hand`.

        Raises:
            MotionError: A shape, value or type is invalid; the message names the field, the
                shape received and the shape expected. A present hand must be finite.
        """
        self._fps = check_fps(fps)
        num_frames_given = np.shape(global_orient)[0] if np.ndim(global_orient) else 0
        check_clip_size(num_frames_given, self._fps, what='motion')
        self._present = _frozen(_check_present(present))
        finite = self._present
        global_orient = _float_array('global_orient', global_orient, np.float64, finite)
        num_frames = _frame_count('global_orient', global_orient, (2, 3))
        arrays = {
            'global_orient': global_orient,
            'hand_pose': _checked('hand_pose', hand_pose, (num_frames, 2, NUM_POSE_JOINTS, 3),
                                  np.float64, finite),
            'transl': _checked('transl', transl, (num_frames, 2, 3), np.float64, finite),
            'keypoints': _checked('keypoints', keypoints, (num_frames, 2, NUM_KEYPOINTS, 3),
                                  np.float32, finite),
        }
        for side in HandSide:
            if not finite[side]:
                for name, value in rest_hand(side)._asdict().items():
                    arrays[name][:, side] = value
        self._global_orient = _frozen(arrays['global_orient'])
        self._hand_pose = _frozen(arrays['hand_pose'])
        self._transl = _frozen(arrays['transl'])
        self._keypoints = _frozen(arrays['keypoints'])
        self._betas = None if betas is None else _frozen(
            _checked('betas', betas, (2, NUM_BETAS), np.float64))
        self._texts = _check_texts(texts)
        self._annotation_json = _annotation_to_json(annotation)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_mano(
        cls,
        fps: float,
        global_orient: np.ndarray,
        hand_pose: np.ndarray,
        transl: np.ndarray,
        *,
        betas: np.ndarray | None = None,
        skeletons: Sequence[HandSkeleton] | None = None,
        texts: Iterable[str] | str = (),
        annotation: Mapping[str, Any] | None = None,
        present: Sequence[bool] | np.ndarray | None = None,
    ) -> BimanualMotion:
        """Build a motion from MANO parameters, computing keypoints by forward kinematics.

        Args:
            fps: Frame rate, > 0.
            global_orient: (T, 2, 3) axis-angle root rotations.
            hand_pose: (T, 2, 15, 3) axis-angle joint rotations.
            transl: (T, 2, 3) translations, metres.
            betas: Optional (2, 10) shape, carried into the motion. The default skeletons
                ignore it: to get keypoints that reflect the shape, pass MANO-backed
                skeletons (``handx_gen.hand.mano.skeleton_from_mano``).
            skeletons: (left, right) skeletons; default ``default_skeleton(side)`` per side.
            texts: Descriptions.
            annotation: Optional JSON-compatible mapping.
            present: (2,) bools, which hands the clip holds (default both); an absent
                hand's parameters may be anything, NaN included: it is the
                :func:`rest_hand`.

        Returns:
            The motion, with float32 keypoints from :func:`~handx_gen.hand.kinematics.
            forward_kinematics`.

        Raises:
            MotionError: Invalid shapes or values, or skeletons of the wrong side or count.
        """
        finite = _check_present(present)
        global_orient = _float_array('global_orient', global_orient, np.float64, finite)
        num_frames = _frame_count('global_orient', global_orient, (2, 3))
        hand_pose = _checked(
            'hand_pose', hand_pose, (num_frames, 2, NUM_POSE_JOINTS, 3), np.float64, finite)
        transl = _checked('transl', transl, (num_frames, 2, 3), np.float64, finite)
        for side in HandSide:
            if not finite[side]:  # the rest hand's parameters, so forward kinematics runs
                rest = rest_hand(side)
                global_orient[:, side], hand_pose[:, side] = rest.global_orient, rest.hand_pose
                transl[:, side] = rest.transl
        keypoints = _forward_kinematics(global_orient, hand_pose, transl, _skeletons(skeletons))
        return cls(
            fps, global_orient, hand_pose, transl, keypoints, betas=betas, texts=texts,
            annotation=annotation, present=finite)

    @classmethod
    def concatenate(
        cls,
        motions: Sequence[BimanualMotion],
        *,
        texts: Iterable[str] | str | None = None,
        annotation: Mapping[str, Any] | None = None,
    ) -> BimanualMotion:
        """Join motions end to end in time.

        All motions must share the frame rate, the betas (all ``None`` or all equal) and the
        hands present (a hand absent in part of a clip is a dropout, not an absent hand).

        Args:
            motions: One or more motions.
            texts: Texts of the result. Default: the common texts when every motion has the
                same, else none.
            annotation: Annotation of the result. Default: the common annotation when every
                motion has the same, else ``None``.

        Returns:
            A motion with the sum of the frame counts.

        Raises:
            MotionError: No motions, a non-motion, or mismatching fps, betas or hands present.
        """
        motions = list(motions)
        if not motions:
            raise MotionError('concatenate needs at least one motion, got none')
        for index, motion in enumerate(motions):
            if not isinstance(motion, BimanualMotion):
                raise MotionError(
                    f'concatenate: item {index} is a {type(motion).__name__}, '
                    'expected BimanualMotion')
        first = motions[0]
        for index, motion in enumerate(motions[1:], start=1):
            if not math.isclose(motion.fps, first.fps, rel_tol=1e-9):
                raise MotionError(
                    f'concatenate: motion {index} has fps {motion.fps}, motion 0 has '
                    f'{first.fps}; resample first (motion.resample, `handx data resample`)')
            if (motion.betas is None) != (first.betas is None) or (
                    first.betas is not None and not np.array_equal(motion.betas, first.betas)):
                raise MotionError(f'concatenate: motion {index} has other betas than motion 0')
            if not np.array_equal(motion.present, first.present):
                raise MotionError(
                    f'concatenate: motion {index} holds {motion.hands_present()}, motion 0 '
                    f'{first.hands_present()}; a hand absent from part of a clip is a dropout '
                    f'(`handx data convert --fill-invalid` fills it from the nearest frames)')
        if texts is None:
            same = all(m.texts == first.texts for m in motions)
            texts = first.texts if same else ()
        if annotation is None:
            same = all(m._annotation_json == first._annotation_json for m in motions)
            annotation = first.annotation if same else None
        return cls(
            first.fps,
            np.concatenate([m.global_orient for m in motions]),
            np.concatenate([m.hand_pose for m in motions]),
            np.concatenate([m.transl for m in motions]),
            np.concatenate([m.keypoints for m in motions]),
            betas=first.betas, texts=texts, annotation=annotation, present=first.present)

    # ------------------------------------------------------------------ fields

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def global_orient(self) -> np.ndarray:  # (T, 2, 3)
        return self._global_orient

    @property
    def hand_pose(self) -> np.ndarray:  # (T, 2, 15, 3)
        return self._hand_pose

    @property
    def transl(self) -> np.ndarray:  # (T, 2, 3)
        return self._transl

    @property
    def keypoints(self) -> np.ndarray:  # (T, 2, 21, 3) float32
        return self._keypoints

    @property
    def betas(self) -> np.ndarray | None:  # (2, 10)
        return self._betas

    @property
    def texts(self) -> tuple[str, ...]:
        return self._texts

    @property
    def annotation(self) -> dict[str, Any] | None:
        if self._annotation_json is None:
            return None
        return json.loads(self._annotation_json)

    @property
    def present(self) -> np.ndarray:  # (2,) bool
        return self._present

    @property
    def present_sides(self) -> tuple[HandSide, ...]:
        """The hands the clip holds, left first."""
        return tuple(side for side in HandSide if self._present[side])

    @property
    def absent_sides(self) -> tuple[HandSide, ...]:
        """The hands absent from the whole clip (at most one), left first."""
        return tuple(side for side in HandSide if not self._present[side])

    def hands_present(self) -> str:
        """In words: ``'both hands'``, ``'the right hand only'``."""
        if not self.absent_sides:
            return 'both hands'
        return f'the {self.present_sides[0].name.lower()} hand only'

    @property
    def num_frames(self) -> int:
        return int(self._global_orient.shape[0])

    @property
    def duration_s(self) -> float:
        """Clip length ``num_frames / fps``: each frame covers one frame period."""
        return self.num_frames / self._fps

    def __len__(self) -> int:
        return self.num_frames

    def fingerprint(self) -> str:
        """16 hex digits of a SHA-256 over the frame rate and the keypoints (float32), what
        retargeting reads: clips with equal fingerprints play the same keypoints at the same
        rate. A trajectory records its source clip's, so a different clip of the same length
        is told apart (``handx sim --motion``)."""
        hasher = hashlib.sha256(f'{self._fps!r} {self._keypoints.shape}'.encode())
        hasher.update(np.ascontiguousarray(self._keypoints, dtype='<f4').tobytes())
        if self.absent_sides:  # two-hand clips keep the fingerprints they always had
            hasher.update(f' present {self._present.tolist()}'.encode())
        return hasher.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f'BimanualMotion(frames={self.num_frames}, fps={self._fps:g}, '
            f'duration_s={self.duration_s:.3f}, texts={len(self._texts)}, '
            f'betas={"yes" if self._betas is not None else "no"}, '
            f'annotation={"yes" if self._annotation_json is not None else "no"}'
            + ('' if not self.absent_sides else f', hands={self.hands_present()!r}') + ')')

    # ------------------------------------------------------------------ derived motions

    def _replace(self, **changes: Any) -> BimanualMotion:
        fields = {
            'fps': self._fps,
            'global_orient': self._global_orient,
            'hand_pose': self._hand_pose,
            'transl': self._transl,
            'keypoints': self._keypoints,
            'betas': self._betas,
            'texts': self._texts,
            'annotation': self.annotation,
            'present': self._present,
        }
        fields.update(changes)
        return BimanualMotion(**fields)

    def segment(self, start: int, stop: int) -> BimanualMotion:
        """Frames ``[start, stop)`` (same frame rate, betas, texts and annotation).

        Raises:
            MotionError: An empty or out-of-range interval.
        """
        for name, value in (('start', start), ('stop', stop)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise MotionError(f'segment {name} must be an integer, got {value!r}')
        if not 0 <= start < stop <= self.num_frames:
            raise MotionError(f'segment [{start}, {stop}) is not a non-empty interval of the '
                              f'{self.num_frames} frames')
        return self._replace(global_orient=self._global_orient[start:stop],
                             hand_pose=self._hand_pose[start:stop],
                             transl=self._transl[start:stop],
                             keypoints=self._keypoints[start:stop])

    def with_texts(self, texts: Iterable[str] | str) -> BimanualMotion:
        """A copy with other texts (a single string counts as one text)."""
        return self._replace(texts=texts)

    def with_annotation(self, annotation: Mapping[str, Any] | None) -> BimanualMotion:
        """A copy with another annotation (``None`` removes it)."""
        return self._replace(annotation=annotation)

    def __getitem__(self, frames: slice) -> BimanualMotion:
        """Frames selected by a slice, as a motion.

        A step ``k > 1`` keeps every k-th frame and divides the fps by ``k``. Texts, betas and
        annotation are kept.

        Raises:
            TypeError: ``frames`` is not a slice.
            MotionError: A step < 1, or the slice selects no frame.
        """
        if not isinstance(frames, slice):
            raise TypeError(
                f'BimanualMotion indices must be slices over frames, got '
                f'{type(frames).__name__}')
        step = 1 if frames.step is None else frames.step
        if not isinstance(step, (int, np.integer)) or step < 1:
            raise MotionError(f'frame slice step must be an integer >= 1, got {frames.step!r}')
        selected = range(self.num_frames)[frames]
        if len(selected) == 0:
            raise MotionError(
                f'frame slice {frames} selects no frame of a {self.num_frames}-frame motion')
        return self._replace(
            fps=self._fps / int(step),
            global_orient=self._global_orient[frames],
            hand_pose=self._hand_pose[frames],
            transl=self._transl[frames],
            keypoints=self._keypoints[frames])

    def mirrored(self) -> BimanualMotion:
        """The whole scene mirrored through the world plane x = 0.

        Every point ``(x, y, z)`` becomes ``(-x, y, z)``; a mirrored left hand is a right
        hand, so the hands swap index: the new left hand (index 0) is the mirror image of the
        old right hand. Per hand, rotations map as axis-angle ``(a, b, c) -> (a, -b, -c)``
        and translations and keypoints as ``x -> -x``
        (:func:`~handx_gen.hand.kinematics.mirror_axis_angle`,
        :func:`~handx_gen.hand.kinematics.mirror_points`). Because the canonical left hand is
        the mirror image of the right hand, forward kinematics of the mirrored parameters
        gives the mirrored keypoints, and mirroring twice is the identity.

        Betas and presence swap rows with their hands (an absent right hand becomes an absent
        left hand, the rest hand of its side). The words 'left' and 'right' in the texts are
        swapped (:func:`swap_left_right_words`). The annotation is dropped, since it may
        describe either hand by side; attach a mirrored one with :meth:`with_annotation`.
        """
        swap = [int(HandSide.RIGHT), int(HandSide.LEFT)]
        return BimanualMotion(
            self._fps,
            kinematics.mirror_axis_angle(self._global_orient[:, swap]),
            kinematics.mirror_axis_angle(self._hand_pose[:, swap]),
            kinematics.mirror_points(self._transl[:, swap]),
            kinematics.mirror_points(self._keypoints[:, swap]),
            betas=None if self._betas is None else self._betas[swap],
            texts=tuple(swap_left_right_words(text) for text in self._texts),
            annotation=None, present=self._present[swap])

    def swap_hands(self) -> BimanualMotion:
        """Give each hand's motion to the other hand; the same as :meth:`mirrored`.

        Moving a hand's content to the other index without mirroring would drive a left hand
        with right-hand parameters, which is not anatomically valid. Mirroring the whole
        scene through x = 0 is the swap that keeps both hands valid and their spatial
        relation (mirrored) intact.
        """
        return self.mirrored()

    def resample(self, fps: float) -> BimanualMotion:
        """The motion at another frame rate, keeping its duration.

        Output frame ``j`` is taken at time ``j / fps`` for ``j < round(num_frames * fps /
        self.fps)`` (at least one frame), so ``duration_s`` is kept up to rounding. Times
        past the last input frame hold the last frame. Times that fall on an input frame
        reproduce it exactly.

        Between input frames, rotations are interpolated by quaternion slerp and
        translations linearly. Keypoints are re-posed rather than interpolated linearly:
        each bone's offset in the frame of its parent joint (constant in time when the
        keypoints come from forward kinematics) is interpolated linearly and then turned by
        the interpolated joint rotations. This keeps keypoints consistent with the
        parameters: for a motion from :meth:`from_mano` the result equals forward
        kinematics of the resampled parameters with the same skeletons, whatever they were
        (no skeleton is stored in a motion), while linear interpolation would cut the arcs
        that rotating fingers trace. Keypoints from data that do not follow the parameters
        exactly are interpolated smoothly all the same.

        Args:
            fps: The new frame rate, in [MIN_FPS, MAX_FPS] (:mod:`handx_gen.rates`).

        Returns:
            The resampled motion, with the same betas, texts and annotation.
        """
        fps_new = check_fps(fps)
        num_frames = self.num_frames
        num_new = max(1, int(round(num_frames * fps_new / self._fps)))
        source_pos = np.arange(num_new) * (self._fps / fps_new)  # (T',) in source frames
        source_pos = np.minimum(source_pos, num_frames - 1)
        nearest = np.round(source_pos)
        snap = np.abs(source_pos - nearest) < _SNAP_FRAMES
        source_pos = np.where(snap, nearest, source_pos)
        index0 = np.minimum(np.floor(source_pos).astype(np.int64), max(num_frames - 2, 0))
        index1 = np.minimum(index0 + 1, num_frames - 1)
        alpha = source_pos - index0  # (T',) in [0, 1]
        exact0 = snap & (nearest == index0)
        exact1 = snap & (nearest == index1) & ~exact0

        # (T, 2, 16, 3): root then the 15 pose joints, MANO order.
        rotvec = np.concatenate([self._global_orient[:, :, None], self._hand_pose], axis=2)
        quat = rotations.axis_angle_to_quaternion(rotvec)  # (T, 2, 16, 4)
        quat_new = rotations.quaternion_slerp(quat[index0], quat[index1],
                                              alpha[:, None, None, None])
        rotvec_new = rotations.quaternion_to_axis_angle(quat_new)  # (T', 2, 16, 3)
        rotvec_new[exact0] = rotvec[index0[exact0]]
        rotvec_new[exact1] = rotvec[index1[exact1]]

        a3 = alpha[:, None, None]
        transl_new = (1.0 - a3) * self._transl[index0] + a3 * self._transl[index1]
        transl_new[exact0] = self._transl[index0[exact0]]
        transl_new[exact1] = self._transl[index1[exact1]]

        offsets = _bone_offsets(self._keypoints, rotvec, self._transl)  # (T, 2, 21, 3)
        a4 = alpha[:, None, None, None]
        offsets_new = (1.0 - a4) * offsets[index0] + a4 * offsets[index1]
        keypoints_new = _pose_bones(offsets_new, rotvec_new, transl_new)
        keypoints_new[exact0] = self._keypoints[index0[exact0]]
        keypoints_new[exact1] = self._keypoints[index1[exact1]]

        return self._replace(
            fps=fps_new,
            global_orient=rotvec_new[:, :, 0],
            hand_pose=rotvec_new[:, :, 1:],
            transl=transl_new,
            keypoints=keypoints_new)

    # ------------------------------------------------------------------ files

    def save(self, path: PathLike) -> Path:
        """Write the motion as a ``handx-motion/1`` ``.npz`` file.

        Entries: ``format`` (str), ``fps`` (float64), ``keypoints`` (T, 2, 21, 3) float32,
        ``global_orient`` (T, 2, 3), ``transl`` (T, 2, 3) and ``hand_pose`` (T, 2, 15, 3)
        float64, ``texts`` (array of str, possibly empty), and when present ``betas``
        (2, 10) float64 and ``annotation`` (a JSON string). A clip with an absent hand also
        holds ``present`` (2,) bool, and NaN in every frame entry of that hand, so that a
        reader that does not know ``present`` refuses the file rather than take the rest
        hand for a real one; a file without ``present`` holds both hands (every file written
        before it was added). The file is written to a
        temporary name beside ``path`` and moved into place, so a crash never leaves a
        half-written file under ``path``. ``path`` is used as given (no suffix is added);
        missing parent folders are created.

        Returns:
            The path written.
        """
        path = Path(path)
        entries: dict[str, np.ndarray] = {
            'format': np.array(MOTION_FORMAT),
            'fps': np.array(self._fps, dtype=np.float64),
            'keypoints': self._keypoints,
            'global_orient': self._global_orient,
            'transl': self._transl,
            'hand_pose': self._hand_pose,
            'texts': np.array(self._texts, dtype=np.str_).reshape(len(self._texts)),
        }
        if self.absent_sides:
            entries['present'] = self._present
            for name in _FRAME_ENTRIES:
                value = entries[name].copy()
                value[:, ~self._present] = np.nan
                entries[name] = value
        if self._betas is not None:
            entries['betas'] = self._betas
        if self._annotation_json is not None:
            entries['annotation'] = np.array(self._annotation_json)
        return write_npz(path, entries)

    @classmethod
    def load(cls, path: PathLike) -> BimanualMotion:
        """Read a ``handx-motion/1`` ``.npz`` file (never unpickles).

        Unknown extra entries are ignored. ``present`` (optional, (2,) bool) says which hands
        the file holds; without it, both.

        Raises:
            MotionFormatError: The file is missing, not an ``.npz`` archive, corrupt or
                truncated, of another format, lacks an entry, or holds an entry of the wrong
                shape, type or with non-finite values. The message names the file and what
                was wrong.
        """
        source = str(path)
        with NpzArchive(path, MotionFormatError, MOTION_FORMAT) as archive:
            entries = archive.read_all(('format', 'fps'), max_bytes=_MAX_SCALAR_BYTES)
            check_entries(entries, MOTION_FORMAT, _REQUIRED_ENTRIES, source, 'motion',
                          MotionFormatError, present=archive.names)
            fps = _fps_entry(entries['fps'], source)
            # The clip's size, from the headers, before any frame is decompressed.
            shape = archive.header('global_orient').shape
            try:
                check_clip_size(shape[0] if shape else 0, fps, what='motion')
            except MotionError as exc:
                raise MotionFormatError(f'{source}: {exc}') from exc
            entries.update(archive.read_all(_FRAME_ENTRIES, max_frames=MAX_FRAMES))
            entries.update(archive.read_all(('betas', 'present'), max_bytes=_MAX_SCALAR_BYTES))
            entries.update(archive.read_all(('texts',), max_bytes=MAX_JSON_BYTES))
            entries.update(archive.read_all(('annotation',), max_bytes=MAX_JSON_BYTES))
        return cls._from_entries(entries, source)

    @classmethod
    def _from_entries(cls, entries: Mapping[str, np.ndarray], source: str) -> BimanualMotion:
        check_entries(entries, MOTION_FORMAT, _REQUIRED_ENTRIES, source, 'motion',
                      MotionFormatError)
        fps = _fps_entry(entries['fps'], source)
        texts: tuple[str, ...] = ()
        if 'texts' in entries:
            raw = entries['texts']
            if raw.ndim != 1 or (raw.size and raw.dtype.kind != 'U'):
                raise MotionFormatError(
                    f'{source}: "texts" must be a 1-D array of str, got dtype {raw.dtype} '
                    f'shape {raw.shape}')
            texts = tuple(str(text) for text in raw)
        annotation = None
        if 'annotation' in entries:
            annotation = decode_json(entries['annotation'], 'annotation', source,
                                     MotionFormatError)
        present = entries.get('present')
        if present is not None and (present.dtype != np.bool_ or present.shape != (2,)):
            raise MotionFormatError(
                f'{source}: "present" must be (2,) bool (left, right), got dtype '
                f'{present.dtype} shape {present.shape}')
        try:
            return cls(
                fps, entries['global_orient'], entries['hand_pose'], entries['transl'],
                entries['keypoints'], betas=entries.get('betas'), texts=texts,
                annotation=annotation, present=present)
        except MotionError as exc:
            raise MotionFormatError(f'{source}: {exc}') from exc


_FRAME_ENTRIES = ('keypoints', 'global_orient', 'transl', 'hand_pose')
_REQUIRED_ENTRIES = ('fps', *_FRAME_ENTRIES)
_MAX_SCALAR_BYTES = 4096  # format, fps, betas, present: a few numbers or a short string


# ---------------------------------------------------------------------- the rest hand


class RestHand(NamedTuple):
    """What an absent hand holds in every frame (:func:`rest_hand`).

    Attributes:
        global_orient: (3,) axis-angle.
        hand_pose: (15, 3) zeros: the flat hand.
        transl: (3,) metres.
        keypoints: (21, 3) world keypoints, metres (the default skeleton's).
    """

    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    keypoints: np.ndarray


# The right hand's wrist frame in the world for the rest hand: fingers forward (canonical -x
# to world +y), palm down (canonical -y to world -z), so the thumb (canonical +z) points to
# the body's midline (world -x). Columns are the world images of the canonical x, y, z.
_R_WORLD_REST_RIGHT = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@cache
def rest_hand(side: HandSide | int) -> RestHand:
    """The pose an absent hand holds (module doc): the flat default hand, palm down, fingers
    forward, its wrist on the canonical spot of its side
    (:data:`~handx_gen.data.workspace.CANONICAL_WRIST_M`, where wrist-centred data are
    placed); the left hand is the mirror image of the right. Arrays are read-only."""
    from handx_gen.data.workspace import CANONICAL_WRIST_M

    side = HandSide(side)
    R = _R_WORLD_REST_RIGHT
    if side is HandSide.LEFT:
        mirror = np.diag([-1.0, 1.0, 1.0])
        R = mirror @ R @ mirror
    global_orient = rotations.matrix_to_axis_angle(R)
    skeleton = default_skeleton(side)
    transl = np.asarray(CANONICAL_WRIST_M[side], dtype=np.float64) - skeleton.joints_rest[0]
    hand_pose = np.zeros((NUM_POSE_JOINTS, 3))
    keypoints = np.asarray(kinematics.forward_kinematics(global_orient, hand_pose, transl,
                                                         skeleton))
    return RestHand(*(_frozen(np.array(a, dtype=np.float64))
                      for a in (global_orient, hand_pose, transl, keypoints)))


def _fps_entry(fps: np.ndarray, source: str) -> float:
    """The ``fps`` entry as a float in the accepted range (:mod:`handx_gen.rates`)."""
    if fps.shape != () or fps.dtype.kind not in 'fiu':
        raise MotionFormatError(
            f'{source}: "fps" must be a numeric scalar, got dtype {fps.dtype} shape '
            f'{fps.shape}')
    return check_fps(fps.item(), what=f'{source}: "fps"', error=MotionFormatError)


# ---------------------------------------------------------------------- text helpers

_SIDE_WORD = re.compile(r'\b(left|right)\b', re.IGNORECASE)


def swap_left_right_words(text: str) -> str:
    """Swap the whole words 'left' and 'right', keeping their case.

    >>> swap_left_right_words('Left hand waves, RIGHT hand rests')
    'Right hand waves, LEFT hand rests'
    """

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        other = 'right' if word.lower() == 'left' else 'left'
        if word.isupper():
            return other.upper()
        if word[0].isupper():
            return other.capitalize()
        return other

    return _SIDE_WORD.sub(replace, text)


# ---------------------------------------------------------------------- validation


def _float_array(name: str, value: object, dtype: type,
                 present: np.ndarray | None = None) -> np.ndarray:
    """Copy ``value`` into a float array of ``dtype``, finite but for the absent hands of
    ``present`` (2,) (on axis 1; all hands must be finite when it is ``None``)."""
    if hasattr(value, 'detach'):  # torch tensor
        value = value.detach().cpu().numpy()
    raw = np.asarray(value)
    if raw.dtype.kind not in 'fiu':
        raise MotionError(
            f'{name} must be a numeric array, got dtype {raw.dtype} with shape {raw.shape}')
    array = np.array(raw, dtype=dtype, copy=True)
    finite = np.isfinite(array)
    if present is not None and array.ndim >= 2 and array.shape[1] == 2:
        finite[:, ~present] = True
    if not np.all(finite):
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0])
        raise MotionError(
            f'{name} has {len(bad)} non-finite values (first at index {first}), '
            f'shape {array.shape}')
    return array


def _frame_count(name: str, array: np.ndarray, tail: tuple[int, ...]) -> int:
    """Check ``array`` is (T, *tail) with T >= 1 and return T."""
    expected = '(T, ' + ', '.join(str(n) for n in tail) + ')'
    if array.ndim != 1 + len(tail) or array.shape[1:] != tail:
        raise MotionError(f'{name}: expected shape {expected}, got {array.shape}')
    if array.shape[0] < 1:
        raise MotionError(f'{name}: expected shape {expected} with T >= 1, got {array.shape}')
    return int(array.shape[0])


def _checked(name: str, value: object, shape: tuple[int, ...], dtype: type,
             present: np.ndarray | None = None) -> np.ndarray:
    array = _float_array(name, value, dtype, present)
    if array.shape != shape:
        raise MotionError(f'{name}: expected shape {shape}, got {array.shape}')
    return array


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _check_present(present: Sequence[bool] | np.ndarray | None) -> np.ndarray:
    """(2,) bool from ``present`` (default both hands), at least one hand."""
    if present is None:
        return np.ones(2, dtype=bool)
    raw = np.asarray(present)
    if raw.shape != (2,) or raw.dtype != np.bool_:
        raise MotionError(f'present must be two bools (left, right), got dtype {raw.dtype} '
                          f'shape {raw.shape}')
    if not raw.any():
        raise MotionError('present: a motion holds at least one hand, got neither')
    return raw.copy()


def _check_texts(texts: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(texts, str):
        return (texts,)
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    try:
        items = tuple(texts)
    except TypeError as exc:
        raise MotionError(
            f'texts must be a string or an iterable of strings, got {type(texts).__name__}'
        ) from exc
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise MotionError(f'texts[{index}] must be a str, got {type(text).__name__}')
    return items


def _annotation_to_json(annotation: Mapping[str, Any] | None) -> str | None:
    if annotation is None:
        return None
    if not isinstance(annotation, Mapping):
        raise MotionError(
            f'annotation must be a mapping or None, got {type(annotation).__name__}')
    try:
        return json.dumps(dict(annotation), sort_keys=True, allow_nan=False)
    except RecursionError as exc:
        raise MotionError('annotation is nested too deeply to store as JSON') from exc
    except (TypeError, ValueError) as exc:
        raise MotionError(f'annotation is not JSON-serialisable: {exc}') from exc


def _skeletons(skeletons: Sequence[HandSkeleton] | None) -> tuple[HandSkeleton, HandSkeleton]:
    if skeletons is None:
        return (default_skeleton(HandSide.LEFT), default_skeleton(HandSide.RIGHT))
    skeletons = tuple(skeletons)
    if len(skeletons) != 2:
        raise MotionError(f'skeletons must be (left, right), got {len(skeletons)} items')
    for side in HandSide:
        skeleton = skeletons[side]
        if not isinstance(skeleton, HandSkeleton):
            raise MotionError(
                f'skeletons[{int(side)}] must be a HandSkeleton, got {type(skeleton).__name__}')
        if skeleton.side != side:
            raise MotionError(
                f'skeletons[{int(side)}] must be the {side.name} hand, got {skeleton.side.name}')
    return skeletons  # type: ignore[return-value]


def _forward_kinematics(
    global_orient: np.ndarray,
    hand_pose: np.ndarray,
    transl: np.ndarray,
    skeletons: Sequence[HandSkeleton],
) -> np.ndarray:
    """(T, 2, 21, 3) float64 keypoints of both hands."""
    per_side = [
        np.asarray(kinematics.forward_kinematics(
            global_orient[:, side], hand_pose[:, side], transl[:, side], skeletons[side]))
        for side in HandSide
    ]
    return np.stack(per_side, axis=1)


# ---------------------------------------------------------------------- interpolation


# For each keypoint, the MANO joint whose world rotation turns the bone from its keypoint
# parent to it (the MANO joint at the parent keypoint); -1 for the wrist.
_MANO_JOINT_OF_KEYPOINT = {kp: joint for joint, kp in enumerate(KEYPOINT_FROM_MANO_JOINT)}
_BONE_JOINT: tuple[int, ...] = tuple(
    -1 if parent < 0 else _MANO_JOINT_OF_KEYPOINT[parent] for parent in KEYPOINT_PARENTS)


def _bone_offsets(keypoints: np.ndarray, rotvec: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """Per-frame bone offsets in their parent joint frames.

    Row 0 is the wrist minus ``transl`` (the rest wrist joint for FK keypoints); row ``k``
    is ``R_world(parent joint)^T (p_k - p_parent(k))``. (..., 21, 3) float64.
    """
    keypoints = keypoints.astype(np.float64)
    world = kinematics.joint_world_rotations(rotvec[..., 0, :], rotvec[..., 1:, :])  # (..,16,3,3)
    parents = np.array([max(p, 0) for p in KEYPOINT_PARENTS])
    bones = keypoints - keypoints[..., parents, :]  # (..., 21, 3)
    joint_rot = world[..., [max(j, 0) for j in _BONE_JOINT], :, :]  # (..., 21, 3, 3)
    offsets = np.einsum('...ji,...j->...i', joint_rot, bones)
    offsets[..., 0, :] = keypoints[..., 0, :] - transl
    return offsets


def _pose_bones(offsets: np.ndarray, rotvec: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_bone_offsets`: chain the bone offsets into world keypoints."""
    world = kinematics.joint_world_rotations(rotvec[..., 0, :], rotvec[..., 1:, :])  # (..,16,3,3)
    points = [offsets[..., 0, :] + transl]
    for kp in range(1, NUM_KEYPOINTS):
        rot = world[..., _BONE_JOINT[kp], :, :]
        points.append(points[KEYPOINT_PARENTS[kp]] + np.einsum('...ij,...j->...i', rot,
                                                               offsets[..., kp, :]))
    return np.stack(points, axis=-2)
