"""Synthetic MANO model files with the official layout, for tests (no licensed data needed).

The synthetic hand is built on the default skeleton (canonical frame: right fingers -x, palm
-y, thumb +z). Its 778 vertices are

* a ring of six vertices around each of the 16 joints, ``joint +- 4 mm`` along x, y and z;
  ``J_regressor`` averages each ring, so it regresses exactly the skeleton's joints;
* the five fingertip vertices (ids 744, 320, 443, 554, 671) exactly at the skeleton's tips;
* the rest scattered along the 20 bones (joint to child joint, distal joint to tip).

Every vertex is skinned to the joint that moves its bone (the bone's parent end). Shape and
pose blend shapes are small random arrays. The pickles carry the same entries as the official
files, ``bs_style``, ``bs_type``, ``hands_coeffs`` and ``J`` included.

Two writers: :func:`write_plain_pickle` (numpy + scipy.sparse only) and
:func:`write_chumpy_pickle`, which stores several arrays as chumpy objects. chumpy is not
installed: the writer registers stand-in modules ``chumpy``, ``chumpy.ch``,
``chumpy.reordering`` and ``chumpy.ch_ops`` in ``sys.modules`` whose classes pickle exactly as
chumpy's do (the instance ``__dict__`` without ``_parents`` and ``_cache``), and removes them
again before returning, so loading cannot lean on them.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import struct
import sys
import types
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import (
    MANO_FINGERTIP_VERTEX_IDS,
    MANO_PARENTS,
    TIP_PARENT_MANO_JOINT,
    HandSide,
)

NUM_VERTICES = 778
RING_RADIUS_M = 0.004
_ROOT_PARENT = 2**32 - 1  # how the official kintree_table stores the root's parent
_FAKE_CHUMPY_MODULES = ('chumpy', 'chumpy.ch', 'chumpy.reordering', 'chumpy.ch_ops')


def synthetic_mano_arrays(side: HandSide = HandSide.RIGHT, seed: int = 0) -> dict[str, object]:
    """Every entry of an official MANO pickle, synthetic, as numpy arrays / scipy.sparse.

    Returns:
        A dict with the official keys. ``J_regressor`` is a ``scipy.sparse.csc_matrix``,
        ``f`` uint32 and ``kintree_table`` int64 with the root parent ``2**32 - 1``, as in
        the official files.
    """
    rng = np.random.default_rng(seed)
    skeleton = default_skeleton(HandSide.RIGHT)
    joints = np.array(skeleton.joints_rest)  # (16, 3)
    tips = np.array(skeleton.tips_rest)  # (5, 3)

    vertices = np.zeros((NUM_VERTICES, 3))
    owner = np.zeros(NUM_VERTICES, dtype=np.int64)  # joint each vertex is skinned to
    tip_ids = list(MANO_FINGERTIP_VERTEX_IDS)
    free_ids = rng.permutation(np.setdiff1d(np.arange(NUM_VERTICES), tip_ids))

    regressor = np.zeros((16, NUM_VERTICES))
    offsets = RING_RADIUS_M * np.concatenate([np.eye(3), -np.eye(3)])  # (6, 3)
    ring_ids = free_ids[:16 * 6].reshape(16, 6)
    for joint in range(16):
        vertices[ring_ids[joint]] = joints[joint] + offsets
        owner[ring_ids[joint]] = joint
        regressor[joint, ring_ids[joint]] = 1.0 / 6.0

    for finger, vertex in enumerate(tip_ids):
        vertices[vertex] = tips[finger]
        owner[vertex] = TIP_PARENT_MANO_JOINT[finger]

    bones = [(joints[MANO_PARENTS[j]], joints[j], MANO_PARENTS[j]) for j in range(1, 16)]
    bones += [(joints[d], tips[f], d) for f, d in enumerate(TIP_PARENT_MANO_JOINT)]
    scatter_ids = free_ids[16 * 6:]
    choice = rng.integers(0, len(bones), size=len(scatter_ids))
    along = rng.uniform(0.15, 0.85, size=len(scatter_ids))
    noise = rng.normal(0.0, 0.003, size=(len(scatter_ids), 3))
    for vertex, bone, t, n in zip(scatter_ids, choice, along, noise, strict=True):
        start, end, joint = bones[bone]
        vertices[vertex] = start + t * (end - start) + n
        owner[vertex] = joint

    weights = np.zeros((NUM_VERTICES, 16))
    weights[np.arange(NUM_VERTICES), owner] = 1.0
    shapedirs = rng.normal(0.0, 0.002, size=(NUM_VERTICES, 3, 10))
    posedirs = rng.normal(0.0, 0.0005, size=(NUM_VERTICES, 3, 135))

    if side is HandSide.LEFT:  # mirror through x = 0
        vertices[:, 0] *= -1.0
        shapedirs[:, 0, :] *= -1.0

    first = rng.integers(0, NUM_VERTICES, size=1538)
    faces = np.stack([
        first,
        (first + rng.integers(1, 389, size=1538)) % NUM_VERTICES,
        (first + 389 + rng.integers(0, 388, size=1538)) % NUM_VERTICES,
    ], axis=1).astype(np.uint32)
    components, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    kintree = np.array([[_ROOT_PARENT, *MANO_PARENTS[1:]], list(range(16))], dtype=np.int64)
    j_regressor = sp.csc_matrix(regressor)
    return {
        'hands_components': components,
        'f': faces,
        'J_regressor': j_regressor,
        'kintree_table': kintree,
        'J': j_regressor @ vertices,
        'bs_style': 'lbs',
        'hands_coeffs': rng.normal(size=(1554, 45)),
        'weights': weights,
        'posedirs': posedirs,
        'hands_mean': rng.normal(0.0, 0.1, size=45),
        'v_template': vertices,
        'shapedirs': shapedirs,
        'bs_type': 'lrotmin',
    }


# Module paths as Python-2-era numpy and scipy wrote them (the official files' paths).
_LEGACY_GLOBALS = {
    b'cscipy.sparse._csc\ncsc_matrix\n': b'cscipy.sparse.csc\ncsc_matrix\n',
    b'cnumpy._core.multiarray\n_reconstruct\n': b'cnumpy.core.multiarray\n_reconstruct\n',
}


class _Python2StylePickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 wrote ``str``: SHORT_BINSTRING / BINSTRING opcodes.

    Python 3 pickles bytes at protocol 2 as ``_codecs.encode(text, 'latin1')``; the official
    Python-2 files hold raw binary strings instead, which a ``latin1`` unpickler turns into
    ``str`` (and numpy accepts as array data).
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_binary_string(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_binary_string


def _as_python2_strings(entries: Mapping[str, object]) -> dict:
    """Keys and text values as bytes, i.e. Python 2 ``str``."""
    return {key.encode('ascii'): value.encode('ascii') if isinstance(value, str) else value
            for key, value in entries.items()}


def write_plain_pickle(path: Path, entries: Mapping[str, object], protocol: int = 2,
                       legacy: bool = True) -> Path:
    """Pickle ``entries`` (numpy arrays, scipy.sparse, strings) as the official files do.

    Args:
        legacy: With protocol 2, write like Python 2 did: binary strings for keys, text and
            array data (:class:`_Python2StylePickler`), and the old module paths of the
            official files (``scipy.sparse.csc.csc_matrix``,
            ``numpy.core.multiarray._reconstruct``).
    """
    if legacy and protocol == 2:
        path.write_bytes(_dumps_like_python2(entries))
    else:
        path.write_bytes(pickle.dumps(dict(entries), protocol=protocol))
    return path


def _dumps_like_python2(entries: Mapping[str, object]) -> bytes:
    stream = io.BytesIO()
    _Python2StylePickler(stream, protocol=2).dump(_as_python2_strings(entries))
    data = stream.getvalue()
    for new, old in _LEGACY_GLOBALS.items():
        assert new in data, new
        data = data.replace(new, old)
    return data


# ---- stand-in chumpy, pickling like the real one -------------------------------------------


class _FakeChumpy:
    """Mimics chumpy's Ch: terms in the instance dict plus chumpy's bookkeeping entries."""

    def __init__(self, **terms: object) -> None:
        # What chumpy's Ch.__new__ puts in every instance ...
        self.__dict__.update({
            '_dirty_vars': set(),
            '_itr': None,
            '_parents': weakref.WeakKeyDictionary(),
            '_cache': {'r': None, 'drs': weakref.WeakKeyDictionary()},
            '_make_dense': False,
            '_make_sparse': False,
            '_depends_on_deps': {},
        })
        # ... then set(**terms) marks each term dirty and stores it.
        for name, value in terms.items():
            self._dirty_vars.add(name)
            self.__dict__[name] = value

    def __getstate__(self) -> dict:
        # chumpy's Ch.__getstate__: drop the weak-reference dictionaries.
        state = dict(self.__dict__)
        del state['_parents']
        del state['_cache']
        return state


def _fake_class(module: str, name: str) -> type:
    cls = type(name, (_FakeChumpy,), {'__module__': module})
    cls.__qualname__ = name
    return cls


def _fake_modules(extra: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, object]:
    classes = {
        'chumpy.ch': ('Ch', 'MatVecMult'),
        'chumpy.reordering': ('Reshape', 'Select', 'transpose'),
        'chumpy.ch_ops': ('add', 'subtract', 'multiply'),
    }
    for module, names in (extra or {}).items():
        classes[module] = classes.get(module, ()) + names
    modules: dict[str, object] = {'chumpy': types.ModuleType('chumpy')}
    for module, names in classes.items():
        mod = types.ModuleType(module)
        for name in names:
            setattr(mod, name, _fake_class(module, name))
        modules[module] = mod
    return modules


@contextlib.contextmanager
def fake_chumpy(extra: Mapping[str, tuple[str, ...]] | None = None) -> Iterator[dict]:
    """Register stand-in chumpy modules while the block runs; remove them afterwards.

    Yields:
        ``{module name: module}``; classes are attributes (``mods['chumpy.ch'].Ch``).
    """
    names = set(_FAKE_CHUMPY_MODULES) | set(extra or {})
    clash = [name for name in names if name in sys.modules]
    if clash:
        raise RuntimeError(f'chumpy modules already imported: {clash}')
    modules = _fake_modules(extra)
    sys.modules.update(modules)
    try:
        yield modules
    finally:
        for name in modules:
            sys.modules.pop(name, None)


def write_chumpy_pickle(path: Path, entries: Mapping[str, object]) -> Path:
    """Pickle ``entries`` like Python 2 did, with several arrays stored as chumpy objects.

    ``shapedirs`` becomes a ``chumpy.ch.Ch`` (as in the official files); to cover derived
    operations too, ``posedirs`` is a ``reordering.Reshape`` of a flat ``Ch``, ``v_template``
    a ``ch_ops.multiply`` of ``Ch(2 v)`` by ``Ch(0.5)``, ``weights`` a ``ch_ops.add`` of
    ``Ch(w)`` and ``Ch(0.0)`` (scalars broadcast as in chumpy), ``hands_mean`` a
    ``reordering.Select`` that reverses a ``Ch`` and ``hands_components`` a
    ``reordering.transpose`` of the transposed matrix.
    """
    data = dict(entries)
    with fake_chumpy() as mods:
        ch, reordering, ch_ops = (mods['chumpy.ch'], mods['chumpy.reordering'],
                                  mods['chumpy.ch_ops'])
        posedirs = np.asarray(data['posedirs'], dtype=np.float64)
        v_template = np.asarray(data['v_template'], dtype=np.float64)
        hands_mean = np.asarray(data['hands_mean'], dtype=np.float64)
        data['shapedirs'] = ch.Ch(x=np.asarray(data['shapedirs'], dtype=np.float64))
        data['posedirs'] = reordering.Reshape(
            a=ch.Ch(x=posedirs.ravel()), newshape=posedirs.shape)
        # Scaling by 2 and 0.5 and adding 0.0 are exact, so values survive bit for bit.
        data['v_template'] = ch_ops.multiply(
            a=ch.Ch(x=2.0 * v_template), b=ch.Ch(x=np.asarray(0.5)))
        data['weights'] = ch_ops.add(
            a=ch.Ch(x=np.asarray(data['weights'], dtype=np.float64)),
            b=ch.Ch(x=np.asarray(0.0)))
        data['hands_mean'] = reordering.Select(
            a=ch.Ch(x=hands_mean[::-1].copy()), idxs=np.arange(45)[::-1].copy(),
            preferred_shape=(45,))
        data['hands_components'] = reordering.transpose(
            a=ch.Ch(x=np.asarray(data['hands_components']).T.copy()), axes=None)
        path.write_bytes(_dumps_like_python2(data))
    return path


def write_unsupported_chumpy_pickle(path: Path, entries: Mapping[str, object]) -> Path:
    """Like the official layout, but ``shapedirs`` is a ``chumpy.ch_ops.sin`` (unsupported)."""
    data = dict(entries)
    with fake_chumpy(extra={'chumpy.ch_ops': ('sin',)}) as mods:
        data['shapedirs'] = mods['chumpy.ch_ops'].sin(
            x=mods['chumpy.ch'].Ch(x=np.asarray(data['shapedirs'])))
        with open(path, 'wb') as stream:
            pickle.dump(data, stream, protocol=2)
    return path


# ---- hostile pickles ------------------------------------------------------------------------


class _CallOnLoad:
    """Pickles as "call ``func(*args)``": what a hostile model file does."""

    def __init__(self, func: object, *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def write_malicious_pickle(path: Path, how: str, marker: Path,
                           entries: Mapping[str, object] | None = None) -> Path:
    """A pickle that, loaded with plain ``pickle.load``, creates ``marker``.

    Args:
        how: ``'os.system'``, ``'builtins.eval'`` or ``'builtins.exec'``.
        entries: If given, the payload hides as ``bs_style`` inside an otherwise valid model.
    """
    command = f'touch {marker}'
    code = f'open({str(marker)!r}, "w").close()'
    payloads = {
        'os.system': _CallOnLoad(os.system, command),
        'builtins.eval': _CallOnLoad(eval, code),
        'builtins.exec': _CallOnLoad(exec, code),
    }
    payload = payloads[how]
    data: object = payload if entries is None else {**entries, 'bs_style': payload}
    with open(path, 'wb') as stream:
        pickle.dump(data, stream, protocol=2)
    return path
