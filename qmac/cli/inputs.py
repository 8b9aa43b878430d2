"""The checks every ``qmac`` command runs at its edge, before any work: flag values, input arrays, output paths.

Every failure raises :class:`~qmac.cli.common.UsageError`, printed as one line
``qmac: error: <flag>: <value>: <what is allowed>`` with exit code 2. Outputs are written with
:func:`write_atomically`: to a temporary file beside the target, renamed over it only when complete.
"""

import argparse
import math
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .common import UsageError

__all__ = ["integer", "number", "load_array", "load_torch_sparse24", "as_codes", "as_floats", "check_finite_product",
           "e8m0_exponents", "output_file", "output_dir", "write_atomically"]

#: Float input elements whose magnitudes stay below this keep ``W @ A`` finite in float64 for any K we accept:
#: :func:`check_finite_product` checks ``max|W| * max|A| * K`` against it (a quarter of the largest float64, so
#: the quantized product, which can round up, stays finite too).
_PRODUCT_LIMIT = np.finfo(np.float64).max / 4


def integer(lo, hi):
    """An argparse ``type``: an integer in ``[lo, hi]`` (``hi=None``: no upper bound)."""
    allowed = f"allowed: integers {lo}..{hi}" if hi is not None else f"allowed: integers >= {lo}"

    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {allowed}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text!r}: {allowed}")
        return value
    return parse


def number(lo, hi, hi_open=False):
    """An argparse ``type``: a finite float in ``[lo, hi]`` (``[lo, hi)`` with ``hi_open``; ``hi=None``: no bound)."""
    top = "" if hi is None else f" and {'<' if hi_open else '<='} {hi:g}"
    allowed = f"allowed: a finite number >= {lo:g}{top}"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {allowed}") from None
        if not math.isfinite(value) or value < lo or (hi is not None and (value >= hi if hi_open else value > hi)):
            raise argparse.ArgumentTypeError(f"{text!r}: {allowed}")
        return value
    return parse


def load_array(flag, path, kinds=("int", "float")):
    """The 2-D array in the ``.npy`` file ``path`` given to ``flag``, in its own dtype, checked.

    Parameters
    ----------
    flag : str
        The option or argument that named the file (``"--weights"``), for messages.
    path : str
        A ``.npy`` file (not ``.npz``, not a folder, not empty).
    kinds : tuple of str
        ``"int"`` (signed or unsigned integers) and/or ``"float"`` (finite in float64: NaN and infinities
        are refused by name). Booleans, complex numbers, dates, time deltas, strings, objects and records
        never are.

    Returns
    -------
    numpy.ndarray
        Shape ``(rows, cols)``, both at least 1, in the file's dtype: cast it with :func:`as_codes` or
        :func:`as_floats`, which check the values first.
    """
    p = Path(path)
    if p.is_dir():
        raise UsageError(flag, path, "is a folder; allowed: a .npy file")
    try:
        with open(p, "rb") as f:
            x = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(flag, path, "no such file; allowed: a .npy file") from None
    except OSError as e:
        raise UsageError(flag, path, f"cannot be read ({e.strerror or e}); allowed: a readable .npy file") from None
    except (ValueError, EOFError) as e:
        what = "is empty" if isinstance(e, EOFError) else f"is not a .npy array ({str(e).splitlines()[0]})"
        raise UsageError(flag, path, f"{what}; allowed: a .npy file (numpy.save)") from None
    if isinstance(x, np.lib.npyio.NpzFile):
        x.close()
        raise UsageError(flag, path, "is an .npz archive; allowed: one array in a .npy file (numpy.save)")
    names = {"int": "integers", "float": "floats"}
    allowed = "allowed: 2-D " + " or ".join(names[k] for k in kinds)
    kind = "int" if x.dtype.kind in "iu" else "float" if x.dtype.kind == "f" else None
    if kind not in kinds:
        raise UsageError(flag, path, f"holds {x.dtype} elements; {allowed}")
    if x.ndim != 2 or 0 in x.shape:
        raise UsageError(flag, path, f"has shape {x.shape}; {allowed} with at least one row and one column")
    if kind == "float":
        bad = ~np.isfinite(x.astype(np.float64))  # longdouble beyond float64 becomes inf here
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            v = x[where]
            what = ("NaN" if np.isnan(v) else ("+inf" if v > 0 else "-inf") if np.isinf(v)
                    else f"{v!r} (beyond float64)")
            raise UsageError(flag, path, f"holds {what} at {list(where)}; allowed: finite floats")
    return x


#: What ``qmac gemm --weights W.npz`` accepts, for messages.
_TORCH_NPZ = ("allowed: an .npz with values (int8, N x K/2) and meta (int32, N x K/32) as PyTorch's "
              "sparse_semi_structured_from_dense_cutlass returns them, and shape = [N, K]")


def load_torch_sparse24(flag, path):
    """The dense N x K int64 weights of an ``.npz`` holding PyTorch's semi-structured (2:4) int8 tensor, checked.

    The archive holds ``values`` (int8, N x K/2), ``meta`` (int32, N x K/32), both exactly as
    ``torch.sparse._semi_structured_conversions.sparse_semi_structured_from_dense_cutlass`` returns them, and
    ``shape`` (integers ``[N, K]``; N a positive multiple of 16, K of 64: PyTorch's int8 layout). Decoded by
    :func:`qmac.sim.torch_sparse24.from_torch` (PyTorch's positions, fill included) and decompressed. Extra keys
    are refused by name (they would be silently ignored otherwise).
    """
    from qmac.sim.sparse24 import decompress
    from qmac.sim.torch_sparse24 import from_torch
    p = Path(path)
    try:
        with open(p, "rb") as f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise UsageError(flag, path, f"is not an .npz archive; {_TORCH_NPZ}")
            with z:
                keys = set(z.files)
                for key in ("values", "meta", "shape"):
                    if key not in keys:
                        raise UsageError(flag, path, f"has no {key!r}; {_TORCH_NPZ}")
                if keys - {"values", "meta", "shape"}:
                    raise UsageError(flag, path, f"has unknown keys {sorted(keys - {'values', 'meta', 'shape'})}; "
                                     f"{_TORCH_NPZ}")
                values, meta, shape = z["values"], z["meta"], z["shape"]
    except FileNotFoundError:
        raise UsageError(flag, path, f"no such file; {_TORCH_NPZ}") from None
    except IsADirectoryError:
        raise UsageError(flag, path, f"is a folder; {_TORCH_NPZ}") from None
    except OSError as e:
        raise UsageError(flag, path, f"cannot be read ({e.strerror or e}); {_TORCH_NPZ}") from None
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(flag, path, f"is not a readable .npz ({str(e).splitlines()[0] if str(e) else 'empty'}); "
                         f"{_TORCH_NPZ}") from None
    for key, x, dtype in (("values", values, np.int8), ("meta", meta, np.int32)):
        if x.dtype != dtype:
            raise UsageError(flag, path, f"{key} holds {x.dtype} elements; {_TORCH_NPZ}")
    if shape.dtype.kind not in "iu" or shape.shape != (2,):
        raise UsageError(flag, path, f"shape is {shape.dtype} of shape {shape.shape}; {_TORCH_NPZ}")
    n, k = (int(d) for d in shape)
    if n < 16 or n % 16 or k < 64 or k % 64:
        raise UsageError(flag, path, f"shape is [{n}, {k}]; allowed: N a positive multiple of 16 and K of 64 "
                         "(PyTorch's int8 semi-structured layout)")
    for key, x, want in (("values", values, (n, k // 2)), ("meta", meta, (n, k // 32))):
        if x.shape != want:
            raise UsageError(flag, path, f"{key} has shape {x.shape}; allowed: {want} for shape [{n}, {k}]")
    try:
        return decompress(from_torch(values, meta, (n, k))).astype(np.int64)
    except ValueError as e:
        raise UsageError(flag, path, f"meta: {e}; allowed: nibbles of two ascending positions in 0..3, in "
                         "PyTorch's reordered layout") from None


def as_codes(flag, path, x, code_range):
    """Integer array ``x`` (from :func:`load_array`) as int64 codes, after checking in its own dtype that every
    element lies in ``code_range`` = ``(lo, hi)`` (an unsigned ``2**64 - 1`` is out of range, never ``-1``)."""
    lo, hi = code_range
    if x.dtype.kind not in "iu":
        raise UsageError(flag, path, f"holds {x.dtype} elements; allowed: integer codes in [{lo}, {hi}]")
    xmin, xmax = int(x.min()), int(x.max())  # Python ints: exact for every integer dtype
    if xmin < lo or xmax > hi:
        raise UsageError(flag, path, f"codes span [{xmin}, {xmax}]; allowed: [{lo}, {hi}]")
    return x.astype(np.int64)


def e8m0_exponents(flag, path, x, shape):
    """Integer array ``x`` (from :func:`load_array`) as int64 E8M0 biased exponents, after checking that it is
    uint8, has ``shape`` (one exponent per 32-element MX block along K) and holds no 255 (NaN in E8M0)."""
    if x.dtype != np.uint8:
        raise UsageError(flag, path, f"holds {x.dtype} elements; allowed: uint8 E8M0 biased exponents (0..254)")
    if x.shape != shape:
        raise UsageError(flag, path, f"has shape {x.shape}; allowed: {shape}, one E8M0 exponent per 32 K elements")
    nan = np.argwhere(x == 255)
    if nan.size:
        raise UsageError(flag, path, f"holds 255 (NaN in E8M0) at {[int(i) for i in nan[0]]}; allowed: 0..254, "
                         "finite scales 2**-127..2**127")
    return x.astype(np.int64)


def as_floats(x):
    """Array ``x`` (from :func:`load_array`, so finite) as float64."""
    return x.astype(np.float64)


def check_finite_product(flags, W, A):
    """Refuse float operands whose product ``W @ A`` could overflow float64: ``max|W| * max|A| * K`` must stay
    below a quarter of the largest float64 (the message names the input with the larger magnitude)."""
    mw, ma, k = float(np.max(np.abs(W))), float(np.max(np.abs(A))), W.shape[1]
    if mw * ma * k > _PRODUCT_LIMIT:  # inf compares greater too
        (flag, path), big = (flags[0], mw) if mw >= ma else (flags[1], ma)
        raise UsageError(flag, path, f"holds magnitudes up to {big:.3g}, so W @ A overflows float64 "
                         f"(max|W| {mw:.3g} x max|A| {ma:.3g} x K {k}); allowed: max|W| * max|A| * K "
                         f"<= {_PRODUCT_LIMIT:.3g}")


def _check_parent(flag, path, parent):
    if not parent.is_dir():
        raise UsageError(flag, path, f"folder {str(parent)!r} does not exist; allowed: a file in an existing folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(flag, path, f"folder {str(parent)!r} is not writable; allowed: a file in a writable folder")


#: What a ``--plot`` file can be (matplotlib's Agg canvas writes each).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def output_file(flag, path, suffixes):
    """Check, before any work, that ``path`` can become an output file: a name ending in one of ``suffixes``
    (written exactly as given) in an existing, writable folder, not a folder itself. Returns ``path``."""
    if path is None:
        return None
    p = Path(path)
    if not path or p.is_dir() or path.endswith(os.sep):
        raise UsageError(flag, path, "is a folder; allowed: a file name ending in " + ", ".join(suffixes))
    if p.suffix.lower() not in suffixes:
        raise UsageError(flag, path, "allowed: a file name ending in " + ", ".join(suffixes))
    if p.exists() and not stat.S_ISREG(p.stat().st_mode):
        raise UsageError(flag, path, "is not a regular file; allowed: a new or existing regular file")
    _check_parent(flag, path, p.parent if str(p.parent) else Path("."))
    return path


def output_dir(flag, path):
    """Check, before any work, that ``path`` is a folder or can be created as one under a writable folder
    (nothing is created here). Returns ``path``."""
    if not path:
        raise UsageError(flag, path, "allowed: a folder name")
    p = Path(path)
    existing = next(q for q in (p, *p.parents) if q.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        raise UsageError(flag, path, f"{str(existing)!r} is not a folder; allowed: a folder, or a new one "
                         "under an existing folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(flag, path, f"folder {str(existing)!r} is not writable; allowed: a writable folder")
    return path


def write_atomically(flag, path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``: the target is
    either untouched or complete. A failure raises :class:`UsageError` naming ``flag`` and leaves no file."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise UsageError(flag, path, f"cannot be written ({e.strerror or e}); allowed: a writable file") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # what open() would give, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, p)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise UsageError(flag, path, f"cannot be written ({e.strerror or e}); allowed: a writable file") from None
        raise
