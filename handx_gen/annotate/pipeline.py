"""The annotation pipeline: feature extraction, then text, for one clip.

:func:`annotate_motion` is what the ``handx annotate`` command and the synthetic corpus
builder run per clip: :func:`~handx_gen.annotate.features.extract_features` reads the motion
(geometry only), :func:`~handx_gen.annotate.describe.describe` writes the texts from the
record. :func:`annotate_synthetic` adapts it to the builder's callback
(:data:`handx_gen.data.synthetic.Annotator`): from the plan it passes the primitives'
semantic labels, as a dataset would pass its action label, and nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from handx_gen.annotate.describe import DescribeConfig, describe
from handx_gen.annotate.features import FeatureConfig, extract_features
from handx_gen.data.plan import ClipPlan
from handx_gen.motion import BimanualMotion

__all__ = ['annotate_motion', 'annotate_synthetic', 'motion_seed']


def motion_seed(motion: BimanualMotion) -> int:
    """A seed for the wording drawn from the clip's keypoints (same clip, same seed)."""
    digest = hashlib.blake2b(motion.keypoints.tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') >> 1


def annotate_motion(motion: BimanualMotion, *, seed: int | None = None,
                    label: str | Sequence[str] | None = None,
                    feature_config: FeatureConfig | None = None,
                    describe_config: DescribeConfig | None = None,
                    ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Extract the features of a clip and describe it.

    Args:
        motion: The clip.
        seed: Seed of the wording; ``None`` derives one from the keypoints
            (:func:`motion_seed`), so a clip always gets the same text.
        label: The source's action label(s), for the semantic description.
        feature_config: Thresholds of the feature extraction.
        describe_config: Settings of the text writer.

    Returns:
        The texts (semantic, interaction, articulation, ...) and the annotation entries
        ``{'features': record.to_dict(), 'descriptions': [{'granularity', 'text', 'source'},
        ...]}``.
    """
    features = extract_features(motion, feature_config)
    descriptions = describe(features, seed=motion_seed(motion) if seed is None else seed,
                            label=label, config=describe_config)
    return descriptions.texts, {'features': features.to_dict(),
                                'descriptions': descriptions.to_list()}


def annotate_synthetic(motion: BimanualMotion, plan: ClipPlan,
                       ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The synthetic corpus builder's annotate callback.

    Only the primitives' labels are taken from ``plan`` (as a dataset's action label); the
    features come from the motion and the wording seed from its keypoints. The record keeps
    its per-frame curves (``FeatureConfig.keep_curves``): ``handx data check-annotation``
    reads the finger flexion over each planned interval from them.
    """
    labels = tuple(p.label for p in plan.primitives if p.label)
    return annotate_motion(motion, label=labels or None,
                           feature_config=FeatureConfig(keep_curves=True))
