"""Motion container, file format and the model feature layout.

:class:`BimanualMotion` is the one container for two-hand motion (left hand index 0), saved as
``handx-motion/1`` ``.npz`` files; one hand may be absent from a clip (``present``, the
:func:`rest_hand` in its place). :data:`FEATURE_LAYOUT` is the one feature layout models use,
with :class:`Normalizer` statistics that travel with checkpoints.
"""

from handx_gen.motion.container import (
    MOTION_FORMAT,
    BimanualMotion,
    RestHand,
    rest_hand,
    swap_left_right_words,
)
from handx_gen.motion.features import (
    FEATURE_LAYOUT,
    FEATURE_LAYOUT_VERSION,
    FeatureGroup,
    FeatureLayout,
    FeatureSlice,
    Normalizer,
)

__all__ = [
    'FEATURE_LAYOUT',
    'FEATURE_LAYOUT_VERSION',
    'MOTION_FORMAT',
    'BimanualMotion',
    'FeatureGroup',
    'FeatureLayout',
    'FeatureSlice',
    'Normalizer',
    'RestHand',
    'rest_hand',
    'swap_left_right_words',
]
