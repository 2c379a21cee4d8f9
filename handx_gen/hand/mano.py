"""MANO model files: safe loading, conversion to ``.npz``, an smplx layer and skeletons.

MANO (Romero et al., "Embodied Hands", SIGGRAPH Asia 2017) ships as ``MANO_LEFT.pkl`` and
``MANO_RIGHT.pkl``: Python-2 pickles holding numpy arrays, a ``scipy.sparse`` joint regressor
and chumpy objects. This module reads them, converts them to a plain ``.npz`` and builds the
model through smplx.

Why a restricted unpickler
--------------------------
Unpickling is not parsing. A pickle names callables (``module.name``) that the loader imports
and calls with arguments taken from the file, so ``pickle.load`` on a crafted file can run any
code at all (``os.system('...')`` is three opcodes). A model file downloaded from the internet
must therefore never reach a plain ``pickle.load``. :func:`load_mano_pickle` uses an unpickler
whose ``find_class`` resolves only an explicit allowlist and refuses everything else with a
:class:`~handx_gen.errors.ManoModelError` naming the module and class, before anything is
called:

* numpy reconstruction helpers: ``numpy.ndarray``, ``numpy.dtype``,
  ``numpy.core.multiarray._reconstruct`` and ``.scalar`` (also under ``numpy._core``);
* ``scipy.sparse`` CSC/CSR/COO matrices, old module paths included
  (``scipy.sparse.csc.csc_matrix``). They load into stand-ins that only record the pickled
  state, then are rebuilt through the public scipy constructors, which works whatever scipy
  version wrote the file;
* a few chumpy classes (:data:`SUPPORTED_CHUMPY_CLASSES`), mapped to local stand-ins;
* ``set``/``frozenset`` (chumpy state holds sets), ``_codecs.encode`` restricted to latin-1
  (how Python 3 writes bytes in protocol-2 pickles) and ``copyreg._reconstructor`` restricted
  to creating the stand-ins above (protocols 0 and 1).

Chumpy without chumpy
---------------------
chumpy does not import on current Python. Its objects carry no method that pickling uses
(no ``__reduce__``), so a chumpy object is pickled as "create an instance of
``chumpy.ch.Ch``, then ``__setstate__`` this dict". The dict is the instance ``__dict__`` minus
the weak-reference caches (``_parents``, ``_cache``): bookkeeping entries (``_dirty_vars``,
``_itr``, ``_make_dense``, ``_make_sparse``, ``_depends_on_deps``) plus the object's terms. For
a plain ``Ch`` the value is the numpy array under ``'x'`` (this is how the official files store
``shapedirs``). Derived operations never store their value, only their inputs: ``'a'`` and
``'b'`` for ``ch_ops.add``, ``'a'`` and ``'newshape'`` for ``reordering.Reshape``, ``'a'``,
``'idxs'`` and ``'preferred_shape'`` for ``reordering.Select``, and so on. The stand-ins here
record that dict and, for the supported classes, recompute the value with numpy exactly as
chumpy's ``compute_r`` does. Other chumpy classes are refused by name.

Fingertips
----------
MANO has 16 joints and no fingertips; the fingertips are mesh vertices, by the common
convention (smplx ``vertex_ids['mano']``): thumb 744, index 320, middle 443, ring 554,
little 671 (:data:`~handx_gen.hand.topology.MANO_FINGERTIP_VERTEX_IDS`).

Frame and conventions
---------------------
Model arrays are in MANO's own frame, the SMPL-H T-pose frame: at rest the right hand's
fingers point -x, the palm faces -y and the thumb points +z; the left hand is its mirror image
through x = 0. Metres. The layer uses ``flat_hand_mean=True`` (hand_pose all zeros is the flat
rest hand) and full axis-angle poses (no PCA).

Known quirk of the official files: ``MANO_LEFT.pkl``'s ``shapedirs`` has the sign of its x
component flipped relative to a true mirror of the right hand's (smplx issue #48), so equal
``betas`` give slightly different left and right hands. The arrays are kept as shipped, since
datasets were fitted with them.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from handx_gen.errors import ManoModelError, unknown_choice
from handx_gen.hand.skeleton import HandSkeleton
from handx_gen.hand.topology import (
    MANO_FINGERTIP_VERTEX_IDS,
    MANO_PARENTS,
    NUM_MANO_JOINTS,
    NUM_POSE_JOINTS,
    HandSide,
    keypoints_from_mano_joints,
)
from handx_gen.npz import NpzArchive

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray

__all__ = [
    'MANO_ARRAY_SHAPES',
    'MANO_FORMAT',
    'NUM_BETAS',
    'NUM_FACES',
    'NUM_VERTICES',
    'SUPPORTED_CHUMPY_CLASSES',
    'ManoArrays',
    'ManoFileInfo',
    'ManoLayer',
    'ManoOutput',
    'build_mano_layer',
    'convert_mano_pickle',
    'inspect_mano_file',
    'load_mano_arrays',
    'load_mano_pickle',
    'save_mano_arrays',
    'skeleton_from_mano',
]

MANO_FORMAT = 'handx-mano/1'
NUM_VERTICES = 778
NUM_FACES = 1538
NUM_BETAS = 10
NUM_POSE_BLEND = 9 * NUM_POSE_JOINTS  # 135: (R - I) of the 15 pose joints, flattened

# Every array a MANO model needs, with its shape (the official files' layout).
MANO_ARRAY_SHAPES: Mapping[str, tuple[int, ...]] = MappingProxyType({
    'v_template': (NUM_VERTICES, 3),
    'shapedirs': (NUM_VERTICES, 3, NUM_BETAS),
    'posedirs': (NUM_VERTICES, 3, NUM_POSE_BLEND),
    'J_regressor': (NUM_MANO_JOINTS, NUM_VERTICES),
    'weights': (NUM_VERTICES, NUM_MANO_JOINTS),
    'kintree_table': (2, NUM_MANO_JOINTS),
    'f': (NUM_FACES, 3),
    'hands_components': (3 * NUM_POSE_JOINTS, 3 * NUM_POSE_JOINTS),
    'hands_mean': (3 * NUM_POSE_JOINTS,),
})
_INTEGER_KEYS = frozenset({'kintree_table', 'f'})

_SIDE_NAMES = {'left': HandSide.LEFT, 'right': HandSide.RIGHT}
_PICKLE_CORRUPT_ERRORS = (
    pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
    KeyError, OverflowError, MemoryError, RecursionError,
)
_MAX_CHUMPY_DEPTH = 64
# Bounds on what a pickle may make, checked before each allocation. MANO's largest array,
# posedirs, has 315,090 elements and the whole model about 400,000, so these leave room
# while keeping a hostile file (a 355-byte chumpy Tile asked for 3.5 GB) to a few hundred MB.
_MAX_ARRAY_ELEMENTS = 2**22  # per array, dense or sparse (32 MiB of float64)
_MAX_TOTAL_ELEMENTS = 2**24  # every evaluated chumpy object and densified matrix together
_MAX_ITEM_BYTES = 2**16  # one array element (a dtype's itemsize)
_MAX_WORK = 2**30  # multiply-adds of one product (dot, matrix times vector)
_MAX_SMALL_ENTRY_BYTES = 4096  # format and side of a converted .npz
_REQUIRED = object()  # sentinel: a chumpy term without a default


# --------------------------------------------------------------------------------------------
# Restricted unpickling


class _SparseStandIn:
    """Records the pickled state of a scipy.sparse matrix; :meth:`build` makes the real one."""

    sparse_format: ClassVar[str] = ''

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise ManoModelError(
                f'pickled scipy.sparse {self.sparse_format} matrix has state of type '
                f'{type(state).__name__}; expected a dict')
        self.state = state

    def build(self, source: str) -> sp.spmatrix:
        state = getattr(self, 'state', None)
        if state is None:
            raise ManoModelError(f'{source}: scipy.sparse matrix without pickled state')
        shape = state.get('_shape', state.get('shape'))
        try:
            shape = tuple(int(n) for n in shape)
            _check_elements(math.prod(shape), f'a scipy.sparse {self.sparse_format} matrix of '
                            f'shape {shape}', source)
            if self.sparse_format == 'coo':
                if 'coords' in state:
                    row, col = state['coords']
                else:
                    row, col = state['row'], state['col']
                return sp.coo_matrix((state['data'], (row, col)), shape=shape)
            make = sp.csc_matrix if self.sparse_format == 'csc' else sp.csr_matrix
            return make((state['data'], state['indices'], state['indptr']), shape=shape)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
            keys = sorted(str(k) for k in state)
            raise ManoModelError(
                f'{source}: cannot rebuild a scipy.sparse {self.sparse_format} matrix from '
                f'pickled state with keys {keys}: {error}') from error


def _sparse_stand_in(sparse_format: str) -> type[_SparseStandIn]:
    name = f'_Sparse{sparse_format.upper()}StandIn'
    return type(name, (_SparseStandIn,), {'sparse_format': sparse_format, '__module__': __name__})


class _ChumpyStandIn:
    """Records the pickled state dict of one chumpy object; never runs chumpy code."""

    chumpy_class: ClassVar[str] = ''
    compute: ClassVar[Callable[[_OpTerms], Any]]

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise ManoModelError(
                f'pickled {self.chumpy_class} has state of type {type(state).__name__}; '
                'expected a dict')
        self.state = state


class _OpTerms:
    """Access to one chumpy object's pickled terms, resolving nested objects on demand."""

    def __init__(self, resolver: _Resolver, obj: _ChumpyStandIn) -> None:
        self._resolver = resolver
        self._obj = obj
        self.state: dict = getattr(obj, 'state', None) or {}

    def raw(self, name: str, default: Any = _REQUIRED) -> Any:
        """A term as stored (sparse matrices rebuilt, chumpy objects evaluated)."""
        if name not in self.state:
            if default is not _REQUIRED:
                return default
            keys = sorted(str(k) for k in self.state)
            raise ManoModelError(
                f'{self._resolver.source}: {self._obj.chumpy_class} has no {name!r} in its '
                f'pickled state (keys: {keys})')
        return self._resolver.value(self.state[name])

    def array(self, name: str) -> np.ndarray:
        """A differentiable term (a chumpy object or an array) as a float64 array."""
        value = self.raw(name)
        if sp.issparse(value):
            value = self._resolver.counted(value.toarray(), f'{name} (densified)')
        array = np.asarray(value)
        _check_elements(array.size, f'a {array.shape} array from {name!r}')
        return np.atleast_1d(np.asarray(array, dtype=np.float64))


def _check_elements(count: int, what: str, source: str | None = None) -> None:
    """Refuse to make ``what`` when it would hold more than ``_MAX_ARRAY_ELEMENTS``."""
    if count > _MAX_ARRAY_ELEMENTS:
        prefix = f'{source}: ' if source else ''
        raise ManoModelError(
            f'{prefix}refusing to make {what}: {count} elements, at most {_MAX_ARRAY_ELEMENTS} '
            'are accepted in a MANO model (its largest array has 315,090)')


def _check_work(count: int, what: str) -> None:
    if count > _MAX_WORK:
        raise ManoModelError(
            f'refusing to compute {what}: {count} multiply-adds, at most {_MAX_WORK} are '
            'accepted in a MANO model')


def _mat_vec_mult(t: _OpTerms) -> np.ndarray:
    # chumpy.ch.MatVecMult: mtx (a term, often sparse) times vec (flattened to a column).
    vec = t.array('vec')
    mtx = t.raw('mtx')
    columns = vec.shape[1] if vec.ndim > 1 else 1
    rows = int(np.shape(mtx)[0]) if np.ndim(mtx) else 1
    _check_elements(rows * columns, f'a MatVecMult of {rows} rows by {columns} columns')
    stored = mtx.nnz if sp.issparse(mtx) else int(np.size(mtx))
    _check_work(stored * columns, f'a MatVecMult of a {np.shape(mtx)} matrix')
    result = np.asarray(mtx.dot(vec.ravel()[:, None])).ravel()
    if vec.ndim > 1 and vec.shape[1] > 1:
        result = result.reshape(-1, vec.shape[1])
    return result


def _select(t: _OpTerms) -> np.ndarray:
    idxs = t.raw('idxs')
    _check_elements(int(np.size(idxs)), f'a Select of {np.size(idxs)} indices')
    result = t.array('a').ravel()[np.asarray(idxs)]
    shape = t.raw('preferred_shape', None)
    return result if shape is None else result.reshape(shape)


def _concatenate(t: _OpTerms) -> np.ndarray:
    # concatenate() stores the names of its inputs ('m0', 'm1', ...) in the instance's dterms.
    names = list(t.raw('dterms'))
    _check_elements(len(names), f'a Concatenate of {len(names)} terms')
    parts = [t.array(str(n)) for n in names]
    _check_elements(sum(part.size for part in parts), f'a Concatenate of {len(parts)} terms')
    return np.concatenate(parts, axis=t.raw('axis'))


def _tile(t: _OpTerms) -> np.ndarray:
    # np.tile's result shape, worked out (in Python integers) before anything is allocated.
    a = t.array('a')
    reps = t.raw('reps')
    if np.size(reps) > 64:  # numpy arrays have at most 64 dimensions
        raise ManoModelError(f'a Tile with {np.size(reps)} repetition counts')
    reps = tuple(int(r) for r in np.ravel(reps))
    ndim = max(a.ndim, len(reps))
    shape = (1,) * (ndim - a.ndim) + a.shape
    reps_full = (1,) * (ndim - len(reps)) + reps
    result_shape = tuple(n * max(r, 0) for n, r in zip(shape, reps_full, strict=True))
    _check_elements(math.prod(result_shape), f'a Tile of shape {result_shape}')
    return np.tile(a, reps)


def _elementwise(operation: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 first: str, second: str) -> Callable[[_OpTerms], np.ndarray]:
    """A broadcasting binary chumpy op, its result shape checked before it is computed."""

    def compute(t: _OpTerms) -> np.ndarray:
        a, b = t.array(first), t.array(second)
        shape = np.broadcast_shapes(a.shape, b.shape)
        _check_elements(math.prod(shape), f'a {operation.__name__} of shape {shape}')
        return operation(a, b)

    return compute


def _dot(t: _OpTerms) -> np.ndarray:
    a, b = t.array('a'), t.array('b')
    if b.ndim == 1:
        shape, inner = a.shape[:-1], a.shape[-1]
    else:
        shape, inner = a.shape[:-1] + b.shape[:-2] + b.shape[-1:], a.shape[-1]
    _check_elements(math.prod(shape), f'a dot product of shape {shape}')
    _check_work(math.prod(shape) * inner, f'a dot product of shape {shape}')
    return a.dot(b)


_CHUMPY_OPS: Mapping[str, Callable[[_OpTerms], Any]] = MappingProxyType({
    'chumpy.ch.Ch': lambda t: t.array('x'),
    'chumpy.ch.ChHandle': lambda t: t.array('x'),
    'chumpy.ch.MatVecMult': _mat_vec_mult,
    'chumpy.reordering.Reshape': lambda t: t.array('a').reshape(t.raw('newshape')),
    'chumpy.reordering.transpose': lambda t: np.transpose(t.array('a'), t.raw('axes', None)),
    'chumpy.reordering.swapaxes': (
        lambda t: np.swapaxes(t.array('a'), t.raw('axis1'), t.raw('axis2'))),
    'chumpy.reordering.Select': _select,
    'chumpy.reordering.Concatenate': _concatenate,
    'chumpy.reordering.Tile': _tile,
    'chumpy.ch_ops.add': _elementwise(np.add, 'a', 'b'),
    'chumpy.ch_ops.subtract': _elementwise(np.subtract, 'a', 'b'),
    'chumpy.ch_ops.multiply': _elementwise(np.multiply, 'a', 'b'),
    'chumpy.ch_ops.divide': _elementwise(np.divide, 'x1', 'x2'),
    'chumpy.ch_ops.negative': lambda t: -t.array('x'),
    'chumpy.ch_ops.dot': _dot,
    'chumpy.ch_ops.sum': lambda t: np.sum(t.array('x'), axis=t.raw('axis', None)),
})
# Chumpy classes a MANO pickle may contain, as 'module.Class'.
SUPPORTED_CHUMPY_CLASSES: tuple[str, ...] = tuple(sorted(_CHUMPY_OPS))


def _chumpy_stand_in(path: str) -> type[_ChumpyStandIn]:
    name = '_Chumpy_' + path.replace('.', '_')
    attrs = {
        'chumpy_class': path,
        'compute': staticmethod(_CHUMPY_OPS[path]),
        '__module__': __name__,
    }
    return type(name, (_ChumpyStandIn,), attrs)


_CHUMPY_STAND_INS: Mapping[str, type[_ChumpyStandIn]] = MappingProxyType(
    {path: _chumpy_stand_in(path) for path in _CHUMPY_OPS})


def _latin1_encode(text: object, encoding: str = 'utf-8') -> bytes:
    """``_codecs.encode`` as Python 3 uses it in protocol-2 pickles, latin-1 only."""
    if not isinstance(text, str) or encoding.lower().replace('-', '') != 'latin1':
        raise ManoModelError(
            f'refusing _codecs.encode({type(text).__name__}, {encoding!r}) in a pickle; '
            'only latin-1 text (pickled bytes) is allowed')
    return text.encode('latin-1')


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocols 0 and 1), limited to creating stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, (_SparseStandIn, _ChumpyStandIn))
            and base is object and state is None):
        raise ManoModelError(
            f'refusing copyreg._reconstructor({cls!r}, {base!r}, ...) in a pickle; only '
            'scipy.sparse and chumpy objects may be created this way')
    return cls.__new__(cls)


def _bounded_shape(shape: Any, dtype: Any, what: str) -> None:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    count = math.prod(int(n) for n in shape)
    itemsize = np.dtype(dtype).itemsize
    _check_elements(count, f'{what} of shape {shape}')
    if itemsize > _MAX_ITEM_BYTES:
        raise ManoModelError(f'refusing to make {what} of {itemsize}-byte elements')


def _ndarray(shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> np.ndarray:
    """``numpy.ndarray(shape, dtype, ...)`` called from a pickle, its size checked first."""
    _bounded_shape(shape, dtype, 'an array')
    return np.ndarray(shape, dtype, *args, **kwargs)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` (how every pickled array starts), limited to plain arrays of
    bounded size; the pickled data then set by ``__setstate__`` must match it."""
    if subtype is not _ndarray and subtype is not np.ndarray:
        raise ManoModelError(f'refusing to reconstruct {subtype!r} in a pickle; only '
                             'numpy.ndarray is allowed')
    _bounded_shape(shape, np.uint8 if isinstance(dtype, (bytes, str)) else dtype, 'an array')
    return _np_multiarray._reconstruct(np.ndarray, shape, dtype)


def _dtype(spec: Any, *args: Any) -> np.dtype:
    """``numpy.dtype`` from a pickle: named by a string (as numpy pickles it), not sized by the
    file beyond :data:`_MAX_ITEM_BYTES`."""
    if not isinstance(spec, (str, bytes)):
        raise ManoModelError(f'refusing numpy.dtype({type(spec).__name__}) in a pickle; '
                             'numpy pickles dtypes by name')
    dtype = np.dtype(spec.decode('latin-1') if isinstance(spec, bytes) else spec, *args)
    if dtype.itemsize > _MAX_ITEM_BYTES:
        raise ManoModelError(f'refusing a {dtype.itemsize}-byte dtype {dtype} in a pickle')
    return dtype


def _collection(kind: type) -> Callable[..., Any]:
    """``set``/``frozenset`` from a pickle, of a list or tuple only (never of an array, whose
    element count the file does not bound)."""

    def make(items: Any = ()) -> Any:
        if not isinstance(items, (list, tuple, set, frozenset)):
            raise ManoModelError(f'refusing {kind.__name__}({type(items).__name__}) in a pickle')
        return kind(items)

    make.__name__ = kind.__name__
    return make


_CSC, _CSR, _COO = (_sparse_stand_in(fmt) for fmt in ('csc', 'csr', 'coo'))


def _sparse_paths() -> dict[tuple[str, str], type[_SparseStandIn]]:
    table = {}
    for fmt, stand_in in (('csc', _CSC), ('csr', _CSR), ('coo', _COO)):
        # scipy < 1.8 wrote 'scipy.sparse.csc'; newer versions write 'scipy.sparse._csc'.
        for module in (f'scipy.sparse.{fmt}', f'scipy.sparse._{fmt}', 'scipy.sparse'):
            table[(module, f'{fmt}_matrix')] = stand_in
            table[(module, f'{fmt}_array')] = stand_in
    return table


_ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType({
    ('numpy', 'ndarray'): _ndarray,
    ('numpy', 'dtype'): _dtype,
    ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy.core.multiarray', 'scalar'): _np_multiarray.scalar,
    ('numpy._core.multiarray', 'scalar'): _np_multiarray.scalar,
    ('builtins', 'set'): _collection(set),
    ('builtins', 'frozenset'): _collection(frozenset),
    ('builtins', 'object'): object,
    ('copyreg', '_reconstructor'): _reconstructor,
    ('_codecs', 'encode'): _latin1_encode,
    **_sparse_paths(),
})
# Python 2 module names, as they appear in old pickles.
_MODULE_ALIASES = MappingProxyType({'__builtin__': 'builtins', 'copy_reg': 'copyreg'})


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_ALLOWED_GLOBALS` and chumpy stand-ins."""

    def __init__(self, stream: io.BufferedIOBase, source: str) -> None:
        super().__init__(stream, encoding='latin1')
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        module = _MODULE_ALIASES.get(module, module)
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        path = f'{module}.{name}'
        if path in _CHUMPY_STAND_INS:
            return _CHUMPY_STAND_INS[path]
        if module == 'chumpy' or module.startswith('chumpy.'):
            raise ManoModelError(
                f'{self._source}: unsupported chumpy class {path}; supported: '
                f'{", ".join(SUPPORTED_CHUMPY_CLASSES)}')
        raise ManoModelError(
            f'{self._source}: refusing to load {path} from a MANO pickle: loading a pickle can '
            'run arbitrary code, so only numpy arrays, scipy.sparse matrices and chumpy arrays '
            'are allowed')

    def persistent_load(self, pid: Any) -> Any:
        raise ManoModelError(f'{self._source}: pickle uses persistent id {pid!r}; not allowed')


class _Resolver:
    """Turns loaded stand-ins into numpy arrays and scipy.sparse matrices."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._memo: dict[int, Any] = {}
        self._active: set[int] = set()
        self._elements = 0  # made so far, all results together

    def value(self, obj: Any) -> Any:
        if isinstance(obj, _SparseStandIn):
            key = id(obj)
            if key not in self._memo:
                self._memo[key] = obj.build(self.source)
            return self._memo[key]
        if isinstance(obj, _ChumpyStandIn):
            return self._chumpy(obj)
        if isinstance(obj, np.ndarray):
            # Elements of zero bytes cost nothing to store but everything to convert.
            _check_elements(obj.size, f'an array of shape {obj.shape}', self.source)
        return obj

    def counted(self, array: np.ndarray, what: str) -> np.ndarray:
        """``array``, added to the elements made so far; refused past the total bound."""
        self._elements += int(np.size(array))
        if self._elements > _MAX_TOTAL_ELEMENTS:
            raise ManoModelError(
                f'{self.source}: evaluating {what} makes {self._elements} elements in all; at '
                f'most {_MAX_TOTAL_ELEMENTS} are accepted for a MANO model')
        return array

    def _chumpy(self, obj: _ChumpyStandIn) -> np.ndarray:
        key = id(obj)
        if key in self._memo:
            return self._memo[key]
        if key in self._active or len(self._active) >= _MAX_CHUMPY_DEPTH:
            raise ManoModelError(
                f'{self.source}: chumpy objects nest in a cycle or deeper than '
                f'{_MAX_CHUMPY_DEPTH} levels at {obj.chumpy_class}')
        self._active.add(key)
        try:
            result = obj.compute(_OpTerms(self, obj))
            result = np.atleast_1d(np.asarray(result, dtype=np.float64))
            _check_elements(result.size, f'{obj.chumpy_class} of shape {result.shape}')
        except ManoModelError as error:
            if self.source in str(error):
                raise
            raise ManoModelError(f'{self.source}: {error}') from error
        except (ValueError, TypeError, IndexError, AttributeError, OverflowError,
                MemoryError) as error:
            raise ManoModelError(
                f'{self.source}: cannot evaluate {obj.chumpy_class} from its pickled state: '
                f'{error}') from error
        finally:
            self._active.discard(key)
        self._memo[key] = self.counted(result, obj.chumpy_class)
        return result


def load_mano_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read an official MANO ``.pkl`` safely, without chumpy.

    Only allowlisted classes are resolved (see the module docstring): a pickle can run
    arbitrary code when loaded, and a model file is downloaded data.

    Args:
        path: A ``MANO_LEFT.pkl`` / ``MANO_RIGHT.pkl`` (or any pickle of the same layout).

    Returns:
        Every entry of the file: chumpy objects evaluated to float64 numpy arrays, sparse
        matrices rebuilt as current scipy.sparse matrices, other values as stored.

    Raises:
        ManoModelError: missing file; a forbidden or unsupported class (named in the
            message); a corrupt or truncated file; a top level that is not a dict.
    """
    path = _existing_file(path)
    try:
        with path.open('rb') as stream:
            raw = _RestrictedUnpickler(stream, source=str(path)).load()
    except ManoModelError as error:
        if str(path) in str(error):
            raise
        raise ManoModelError(f'{path}: {error}') from error
    except _PICKLE_CORRUPT_ERRORS as error:
        raise ManoModelError(
            f'{path}: not a readable MANO pickle (corrupt or truncated): '
            f'{type(error).__name__}: {error}') from error
    if not isinstance(raw, dict):
        raise ManoModelError(
            f'{path}: a MANO pickle holds a dict of arrays; got {type(raw).__name__}')
    bad_keys = [key for key in raw if not isinstance(key, str)]
    if bad_keys:
        raise ManoModelError(f'{path}: MANO pickle has non-string keys {bad_keys[:5]!r}')
    resolver = _Resolver(str(path))
    return {key: resolver.value(value) for key, value in raw.items()}


# --------------------------------------------------------------------------------------------
# Model arrays


def _expected_layout() -> str:
    return ', '.join(f'{key} {shape}' for key, shape in MANO_ARRAY_SHAPES.items())


def _normalise_arrays(data: Mapping[str, Any], source: str) -> dict[str, np.ndarray]:
    """Check keys, shapes and values; return dense float64 / int64 copies."""
    missing = [key for key in MANO_ARRAY_SHAPES if key not in data]
    if missing:
        raise ManoModelError(
            f'{source}: missing MANO arrays {missing}; a MANO model needs {_expected_layout()}')
    arrays: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for key, shape in MANO_ARRAY_SHAPES.items():
        value = data[key]
        if sp.issparse(value):
            value = value.toarray()
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            problems.append(f'{key}: not an array ({type(value).__name__}: {error})')
            continue
        if array.dtype.kind not in 'biuf':
            problems.append(f'{key}: dtype {array.dtype}, expected numbers')
            continue
        if array.shape != shape:
            problems.append(f'{key}: shape {array.shape}, expected {shape}')
            continue
        if key in _INTEGER_KEYS:
            if array.dtype.kind == 'f' and not np.array_equal(array, np.round(array)):
                problems.append(f'{key}: non-integer values')
                continue
            arrays[key] = array.astype(np.int64)
        else:
            array = np.array(array, dtype=np.float64)
            if not np.all(np.isfinite(array)):
                problems.append(f'{key}: non-finite values')
                continue
            arrays[key] = array
    if problems:
        raise ManoModelError(
            f'{source}: unexpected MANO arrays: {"; ".join(problems)}. '
            f'Expected {_expected_layout()}')

    kintree = arrays['kintree_table']
    parents = kintree[0].copy()
    parents[0] = -1  # the files store the root's parent as 2**32 - 1
    if tuple(parents) != MANO_PARENTS or tuple(kintree[1]) != tuple(range(NUM_MANO_JOINTS)):
        raise ManoModelError(
            f'{source}: kintree_table {kintree.tolist()} is not the MANO tree; expected parents '
            f'{list(MANO_PARENTS)} (root stored as any value) over joints 0..15')
    faces = arrays['f']
    if faces.min() < 0 or faces.max() >= NUM_VERTICES:
        raise ManoModelError(
            f'{source}: faces f index vertices {faces.min()}..{faces.max()}; expected '
            f'0..{NUM_VERTICES - 1}')
    return arrays


def _coerce_side(side: HandSide | str | None) -> HandSide | None:
    if side is None or isinstance(side, HandSide):
        return side
    if isinstance(side, str) and side.lower() in _SIDE_NAMES:
        return _SIDE_NAMES[side.lower()]
    raise ManoModelError(unknown_choice('hand side', side, _SIDE_NAMES))


@dataclass(frozen=True, eq=False)
class ManoArrays:
    """The arrays of one MANO hand model, validated (see :data:`MANO_ARRAY_SHAPES`).

    Arrays are float64 (``kintree_table`` and ``f`` int64) in MANO's frame (SMPL-H T-pose:
    right fingers -x, palm -y, thumb +z; left mirrored through x = 0), metres. They are
    copies, made read-only.
    """

    side: HandSide
    v_template: np.ndarray        # (778, 3) rest vertices
    shapedirs: np.ndarray         # (778, 3, 10) shape blend shapes
    posedirs: np.ndarray          # (778, 3, 135) pose blend shapes
    J_regressor: np.ndarray       # (16, 778) dense joint regressor
    weights: np.ndarray           # (778, 16) skinning weights
    kintree_table: np.ndarray     # (2, 16) parents (root: 2**32 - 1) and joint ids
    f: np.ndarray                 # (1538, 3) triangle vertex indices
    hands_components: np.ndarray  # (45, 45) pose PCA basis
    hands_mean: np.ndarray        # (45,) mean pose
    source: str = field(default='<arrays>', compare=False)

    def __post_init__(self) -> None:
        side = _coerce_side(self.side)
        if side is None:
            raise ManoModelError(f'{self.source}: ManoArrays needs a side (left or right)')
        object.__setattr__(self, 'side', side)
        arrays = _normalise_arrays({k: getattr(self, k) for k in MANO_ARRAY_SHAPES}, self.source)
        for key, array in arrays.items():
            array.flags.writeable = False
            object.__setattr__(self, key, array)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], side: HandSide | str, source: str = '<arrays>',
    ) -> ManoArrays:
        """Build from a mapping holding (at least) the MANO arrays; other keys are ignored."""
        arrays = _normalise_arrays(data, source)
        return cls(side=side, source=source, **arrays)

    def as_dict(self) -> dict[str, np.ndarray]:
        """The MANO arrays by key (the arrays themselves, read-only)."""
        return {key: getattr(self, key) for key in MANO_ARRAY_SHAPES}

    @property
    def parents(self) -> np.ndarray:
        """(16,) parent joint of each joint, -1 for the wrist."""
        parents = self.kintree_table[0].copy()
        parents[0] = -1
        return parents

    def shaped_vertices(self, betas: np.ndarray | None = None) -> np.ndarray:
        """(778, 3) rest vertices of a hand of shape ``betas`` (10,), zero pose."""
        if betas is None:
            return np.array(self.v_template)
        betas = np.asarray(betas, dtype=np.float64)
        if betas.shape != (NUM_BETAS,) or not np.all(np.isfinite(betas)):
            raise ManoModelError(
                f'betas must be {NUM_BETAS} finite numbers, shape ({NUM_BETAS},); got shape '
                f'{betas.shape}')
        return self.v_template + self.shapedirs @ betas


# --------------------------------------------------------------------------------------------
# Files


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ManoModelError(f'MANO model file not found: {path}')
    return path


def _is_zip(path: Path) -> bool:
    with path.open('rb') as stream:
        return stream.read(4) == b'PK\x03\x04'


def _side_from_name(path: Path) -> HandSide | None:
    """LEFT or RIGHT when the file name says so (``MANO_RIGHT.pkl``), else None."""
    words = set(re.split(r'[^a-z]+', path.stem.lower()))
    found = [side for name, side in _SIDE_NAMES.items() if name in words]
    return found[0] if len(found) == 1 else None


def _resolve_side(
    given: HandSide | str | None, detected: HandSide | None, path: Path, how: str,
) -> HandSide:
    side = _coerce_side(given)
    if side is not None and detected is not None and side != detected:
        raise ManoModelError(
            f'side {side.name.lower()!r} was given but {path} {how} '
            f'{detected.name.lower()!r}')
    side = side if side is not None else detected
    if side is None:
        raise ManoModelError(
            f'cannot tell the hand side of {path}: name it MANO_LEFT/MANO_RIGHT or give the '
            "side ('left' or 'right')")
    return side


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], HandSide, tuple[str, ...]]:
    """The model arrays, side and entry names of a converted ``.npz``; other entries are never
    decompressed, and each array is checked against its MANO size before it is read."""
    with NpzArchive(path, ManoModelError, 'MANO') as archive:
        data = archive.read_all(('format', 'side'), max_bytes=_MAX_SMALL_ENTRY_BYTES)
        for key, shape in MANO_ARRAY_SHAPES.items():
            if key in archive:
                # Any numeric dtype of the right shape fits; a larger entry is not MANO's.
                data[key] = archive.read(key, max_bytes=16 * math.prod(shape))
        names = tuple(archive.names)
    fmt = str(data['format']) if 'format' in data else None
    if fmt != MANO_FORMAT:
        raise ManoModelError(f'{path}: format {fmt!r}; expected {MANO_FORMAT!r}')
    side = _coerce_side(str(data.get('side', '')) or None)
    if side is None:
        raise ManoModelError(f"{path}: no side entry; expected 'left' or 'right'")
    return data, side, names


def load_mano_arrays(path: str | os.PathLike, side: HandSide | str | None = None) -> ManoArrays:
    """Load a MANO model from an official ``.pkl`` or a converted ``.npz``.

    The file type is recognised from its content. Pickles go through the restricted
    unpickler (:func:`load_mano_pickle`); ``.npz`` files are read without pickle.

    Args:
        path: ``MANO_LEFT.pkl``, ``MANO_RIGHT.pkl`` or a file written by
            :func:`convert_mano_pickle`.
        side: The hand. Defaults to what the file says: the ``side`` entry of an ``.npz``,
            ``LEFT``/``RIGHT`` in a pickle's name. Must agree with it when both are known.

    Raises:
        ManoModelError: unreadable, unsafe or incomplete file, or an unknown side.
    """
    path = _existing_file(path)
    if _is_zip(path):
        data, stored_side, _ = _read_npz(path)
        side = _resolve_side(side, stored_side, path, 'stores side')
    else:
        data = load_mano_pickle(path)
        side = _resolve_side(side, _side_from_name(path), path, 'is named for side')
    return ManoArrays.from_mapping(data, side=side, source=str(path))


def save_mano_arrays(arrays: ManoArrays, path: str | os.PathLike) -> Path:
    """Write ``arrays`` as a ``handx-mano/1`` ``.npz`` (atomically) and return its path."""
    path = Path(path)
    payload = {key: np.asarray(value) for key, value in arrays.as_dict().items()}
    payload['format'] = np.asarray(MANO_FORMAT)
    payload['side'] = np.asarray(arrays.side.name.lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as stream:
            np.savez_compressed(stream, **payload)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return path


def convert_mano_pickle(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    side: HandSide | str | None = None,
) -> Path:
    """Convert an official MANO pickle to a plain ``.npz`` that needs no pickle to read.

    The ``.npz`` holds the arrays of :data:`MANO_ARRAY_SHAPES` (``J_regressor`` dense),
    ``format = 'handx-mano/1'`` and ``side`` ('left' or 'right').

    Args:
        src: The ``.pkl`` (a converted ``.npz`` is accepted too and rewritten).
        dst: Output path; defaults to ``src`` with the suffix ``.npz``.
        side: The hand, when the file name does not say it.

    Returns:
        The path written.

    Raises:
        ManoModelError: as :func:`load_mano_arrays`.
    """
    src = Path(src)
    dst = src.with_suffix('.npz') if dst is None else Path(dst)
    arrays = load_mano_arrays(src, side=side)
    return save_mano_arrays(arrays, dst)


class ManoFileInfo(NamedTuple):
    """What :func:`inspect_mano_file` finds in a model file."""

    path: Path
    kind: str                 # 'pickle' or 'npz'
    side: HandSide | None     # None when neither the file nor the caller says
    num_vertices: int
    num_faces: int
    keys: tuple[str, ...]     # every entry of the file, sorted


def inspect_mano_file(path: str | os.PathLike, side: HandSide | str | None = None) -> ManoFileInfo:
    """Validate a MANO file and describe it; the side may stay unknown (None)."""
    path = _existing_file(path)
    if _is_zip(path):
        kind = 'npz'
        data, stored, keys = _read_npz(path)
        found = _resolve_side(side, stored, path, 'stores side')
    else:
        kind = 'pickle'
        data = load_mano_pickle(path)
        detected = _side_from_name(path)
        given = _coerce_side(side)
        found = None
        if given is not None or detected is not None:
            found = _resolve_side(given, detected, path, 'is named for side')
        keys = tuple(sorted(data))
    arrays = _normalise_arrays(data, str(path))
    return ManoFileInfo(
        path=path, kind=kind, side=found, num_vertices=arrays['v_template'].shape[0],
        num_faces=arrays['f'].shape[0], keys=keys)


# --------------------------------------------------------------------------------------------
# smplx layer and skeleton


class ManoOutput(NamedTuple):
    """Result of :meth:`ManoLayer.forward`, in the world frame, metres."""

    vertices: torch.Tensor   # (B, 778, 3)
    joints: torch.Tensor     # (B, 16, 3) MANO joint order
    keypoints: torch.Tensor  # (B, 21, 3) keypoint order, fingertips from mesh vertices


class ManoLayer(torch.nn.Module):
    """The MANO model through ``smplx.MANO``, returning vertices and 21 keypoints.

    smplx is given the arrays as a ``data_struct``, so it never opens a pickle itself. Poses
    are full axis-angle (``use_pca=False``) relative to the flat hand (``flat_hand_mean=True``).
    Keypoints are smplx's 16 joints plus the fingertip vertices
    (:data:`~handx_gen.hand.topology.MANO_FINGERTIP_VERTEX_IDS`), arranged by
    :func:`~handx_gen.hand.topology.keypoints_from_mano_joints`.

    Args:
        arrays: The model.
        dtype: Floating dtype of the layer.
    """

    def __init__(self, arrays: ManoArrays, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        import smplx  # deferred: only the layer needs it
        from smplx.utils import Struct

        self.side = arrays.side
        struct = Struct(**{key: np.array(value) for key, value in arrays.as_dict().items()})
        # smplx prints a notice about the 10 shape coefficients; keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            self.model = smplx.MANO(
                model_path=arrays.source,
                is_rhand=arrays.side is HandSide.RIGHT,
                data_struct=struct,
                use_pca=False,
                num_pca_comps=3 * NUM_POSE_JOINTS,
                flat_hand_mean=True,
                create_global_orient=False,
                create_hand_pose=False,
                create_betas=False,
                create_transl=False,
                create_body_pose=False,
                dtype=dtype,
            )
        self.register_buffer(
            'tip_vertex_ids', torch.tensor(MANO_FINGERTIP_VERTEX_IDS, dtype=torch.long),
            persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.shapedirs.dtype

    @property
    def faces(self) -> np.ndarray:
        """(1538, 3) int64 triangle vertex indices."""
        return np.asarray(self.model.faces, dtype=np.int64)

    def forward(
        self,
        global_orient: torch.Tensor,
        hand_pose: torch.Tensor,
        transl: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
    ) -> ManoOutput:
        """Pose the hand.

        Args:
            global_orient: (B, 3) wrist rotation, axis-angle, about the rest wrist joint.
            hand_pose: (B, 15, 3) or (B, 45) joint rotations, axis-angle, MANO joint order.
            transl: (B, 3) translation added after rotation; zeros when None.
            betas: (B, 10) or (10,) shape; zeros when None.
        """
        device = self.model.shapedirs.device
        global_orient = self._tensor(global_orient, 'global_orient', device)
        if global_orient.ndim != 2 or global_orient.shape[1] != 3:
            raise ManoModelError(f'global_orient must be (B, 3); got {tuple(global_orient.shape)}')
        batch = global_orient.shape[0]
        hand_pose = self._tensor(hand_pose, 'hand_pose', device)
        if hand_pose.shape not in ((batch, NUM_POSE_JOINTS, 3), (batch, 3 * NUM_POSE_JOINTS)):
            raise ManoModelError(
                f'hand_pose must be ({batch}, 15, 3) or ({batch}, 45) to match global_orient; '
                f'got {tuple(hand_pose.shape)}')
        hand_pose = hand_pose.reshape(batch, 3 * NUM_POSE_JOINTS)
        if transl is None:
            transl = global_orient.new_zeros(batch, 3)
        transl = self._tensor(transl, 'transl', device)
        if transl.shape != (batch, 3):
            raise ManoModelError(f'transl must be ({batch}, 3); got {tuple(transl.shape)}')
        if betas is None:
            betas = global_orient.new_zeros(batch, NUM_BETAS)
        betas = self._tensor(betas, 'betas', device)
        if betas.shape == (NUM_BETAS,):
            betas = betas.expand(batch, NUM_BETAS)
        if betas.shape != (batch, NUM_BETAS):
            raise ManoModelError(
                f'betas must be ({batch}, {NUM_BETAS}) or ({NUM_BETAS},); got '
                f'{tuple(betas.shape)}')
        out = self.model(
            betas=betas, global_orient=global_orient, hand_pose=hand_pose, transl=transl)
        vertices = out.vertices  # (B, 778, 3)
        joints = out.joints[:, :NUM_MANO_JOINTS]  # (B, 16, 3)
        tips = vertices[:, self.tip_vertex_ids]  # (B, 5, 3)
        return ManoOutput(
            vertices=vertices, joints=joints, keypoints=keypoints_from_mano_joints(joints, tips))

    def _tensor(self, value: Any, name: str, device: torch.device) -> torch.Tensor:
        tensor = torch.as_tensor(value, device=device)
        if not tensor.is_floating_point():
            raise ManoModelError(f'{name} must be floating point; got {tensor.dtype}')
        return tensor.to(self.dtype)


def build_mano_layer(
    path: str | os.PathLike,
    side: HandSide | str | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> ManoLayer:
    """Load a MANO ``.pkl`` or converted ``.npz`` and build a :class:`ManoLayer` from it."""
    return ManoLayer(load_mano_arrays(path, side=side), dtype=dtype)


def skeleton_from_mano(
    arrays: ManoArrays,
    side: HandSide | str | None = None,
    betas: np.ndarray | None = None,
) -> HandSkeleton:
    """The rest skeleton of a MANO hand of shape ``betas``.

    Rest joints are ``J_regressor @ (v_template + shapedirs @ betas)``, as smplx computes
    them; fingertips are the fingertip vertices of the same shaped template. With this
    skeleton, :func:`~handx_gen.hand.kinematics.forward_kinematics` reproduces smplx's joints
    for every pose, and its fingertips at zero pose (MANO skins the tip vertices, so posed
    tips differ slightly from rigidly carried ones).

    Args:
        arrays: The model.
        side: Must match ``arrays.side`` when given.
        betas: (10,) shape coefficients; zeros when None.

    Raises:
        ManoModelError: side mismatch or bad betas.
    """
    given = _coerce_side(side)
    if given is not None and given != arrays.side:
        raise ManoModelError(
            f'side {given.name.lower()!r} given for a {arrays.side.name.lower()!r} MANO model')
    vertices = arrays.shaped_vertices(betas)  # (778, 3)
    joints_rest = arrays.J_regressor @ vertices  # (16, 3)
    tips_rest = vertices[list(MANO_FINGERTIP_VERTEX_IDS)]  # (5, 3)
    return HandSkeleton(side=arrays.side, joints_rest=joints_rest, tips_rest=tips_rest)
