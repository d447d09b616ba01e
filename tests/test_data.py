"""Data set loading: shapes, the 8-bit grid, splits, and clear errors for missing or bad files."""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from a2qflow.config import DatasetName
from a2qflow.data import (
    FASHION_MNIST_DIR,
    IDX_FILES,
    Dataset,
    default_data_dir,
    load_dataset,
)
from a2qflow.errors import A2QFlowError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"
CIFAR_DIR = SHARED_DATA / "cifar10"


def _assert_on_8bit_grid(x: np.ndarray) -> None:
    assert x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    k = np.round(x * 255.0)
    np.testing.assert_array_equal(k.astype(np.float32) / np.float32(255.0), x)


def _assert_well_formed(ds: Dataset, shape: tuple[int, int, int]) -> None:
    assert ds.input_shape == shape
    assert ds.x_train.shape[1:] == shape and ds.x_test.shape[1:] == shape
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    assert ds.num_classes == 10 == len(ds.classes)
    for y in (ds.y_train, ds.y_test):
        assert y.min() >= 0 and y.max() <= 9
    _assert_on_8bit_grid(ds.x_train)
    _assert_on_8bit_grid(ds.x_test)


# --- synthetic files --------------------------------------------------------------------------


def _idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx_set(root: Path, n_train: int = 6, n_test: int = 4, gz: bool = False) -> dict:
    rng = np.random.default_rng(1)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, arr in arrays.items():
        data = _idx_bytes(arr, 2051 if key.endswith("images") else 2049)
        name = IDX_FILES[key]
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays


def _write_cifar_pickles(root: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    all_data = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with (root / name).open("wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
        all_data.append((data, labels))
    names = [c.encode() for c in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")]
    with (root / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": names}, f)
    train = np.concatenate([d for d, _ in all_data[:5]])
    return train, np.concatenate([lab for _, lab in all_data[:5]])


def _write_cifar_npz(path: Path, n_train: int = 5, n_test: int = 3) -> None:
    rng = np.random.default_rng(3)
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        blobs = []
        for _ in range(n):
            buf = io.BytesIO()
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(buf, format="JPEG", quality=75)
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
        arrays[f"{split}_labels"] = rng.integers(0, 10, n).astype(np.uint8)
    arrays["classes"] = np.array([f"class{i}" for i in range(10)])
    np.savez(path, **arrays)


# --- digits -----------------------------------------------------------------------------------


def test_digits_loads_as_nchw_float32_on_the_8bit_grid_with_an_80_20_split():
    ds = load_dataset("digits")
    assert ds.name == "digits"
    _assert_well_formed(ds, (1, 8, 8))
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == 360
    # stratified: every class in both splits
    assert set(np.unique(ds.y_train)) == set(range(10)) == set(np.unique(ds.y_test))
    assert ds.x_train.max() == 1.0  # 16/16 maps to 255/255


def test_digits_split_is_deterministic():
    a, b = load_dataset(DatasetName.DIGITS), load_dataset("digits", data_dir="/ignored")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_subsample_is_fixed_and_nested_across_sizes():
    full = load_dataset("digits")
    small = load_dataset("digits", max_train=50, max_test=20)
    larger = load_dataset("digits", max_train=100)
    assert small.x_train.shape == (50, 1, 8, 8) and small.x_test.shape == (20, 1, 8, 8)
    again = load_dataset("digits", max_train=50, max_test=20)
    np.testing.assert_array_equal(small.x_train, again.x_train)
    # every kept sample comes from the full split, and the 50 are among the 100
    rows = {r.tobytes() + bytes([int(y)]) for r, y in zip(full.x_train, full.y_train, strict=True)}
    larger_rows = {r.tobytes() + bytes([int(y)])
                   for r, y in zip(larger.x_train, larger.y_train, strict=True)}
    small_rows = {r.tobytes() + bytes([int(y)])
                  for r, y in zip(small.x_train, small.y_train, strict=True)}
    assert small_rows <= larger_rows <= rows
    # a limit above the split size keeps everything
    assert len(load_dataset("digits", max_test=10_000).x_test) == 360


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_invalid_subsample_size_is_rejected(bad):
    with pytest.raises(A2QFlowError, match="max_train"):
        load_dataset("digits", max_train=bad)


# --- MNIST / Fashion-MNIST --------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_idx_files_parse_plain_and_gzipped(tmp_path, gz):
    arrays = _write_idx_set(tmp_path, gz=gz)
    ds = load_dataset("mnist", tmp_path)
    _assert_well_formed(ds, (1, 28, 28))
    np.testing.assert_array_equal(np.round(ds.x_train[:, 0] * 255), arrays["train_images"])
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])


def test_truncated_idx_file_names_the_file(tmp_path):
    _write_idx_set(tmp_path)
    target = tmp_path / IDX_FILES["train_images"]
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(A2QFlowError) as err:
        load_dataset("mnist", tmp_path)
    assert str(target) in str(err.value) and "truncated" in str(err.value)


def test_truncated_gzip_idx_file_names_the_file(tmp_path):
    _write_idx_set(tmp_path, gz=True)
    target = tmp_path / f"{IDX_FILES['test_labels']}.gz"
    target.write_bytes(target.read_bytes()[:20])
    with pytest.raises(A2QFlowError) as err:
        load_dataset("mnist", tmp_path)
    assert str(target) in str(err.value) and "gzip" in str(err.value)


def test_idx_file_with_wrong_magic_number_is_rejected(tmp_path):
    _write_idx_set(tmp_path)
    # labels where images belong: magic 2049 instead of 2051
    (tmp_path / IDX_FILES["test_images"]).write_bytes(
        (tmp_path / IDX_FILES["test_labels"]).read_bytes()
    )
    with pytest.raises(A2QFlowError, match="magic number 2049, expected 2051"):
        load_dataset("mnist", tmp_path)


def test_idx_image_and_label_counts_must_agree(tmp_path):
    _write_idx_set(tmp_path)
    labels = np.zeros(5, dtype=np.uint8)  # 4 test images
    (tmp_path / IDX_FILES["test_labels"]).write_bytes(_idx_bytes(labels, 2049))
    with pytest.raises(A2QFlowError, match="4 images but .* 5 labels"):
        load_dataset("mnist", tmp_path)


@pytest.mark.data
def test_real_mnist_has_60000_train_and_10000_test_images():
    if not MNIST_DIR.is_dir():
        pytest.skip(f"MNIST not present at {MNIST_DIR}")
    ds = load_dataset("mnist", MNIST_DIR)
    _assert_well_formed(ds, (1, 28, 28))
    assert len(ds.y_train) == 60000 and len(ds.y_test) == 10000
    assert set(np.unique(ds.y_train)) == set(range(10))


@pytest.mark.data
def test_real_fashion_mnist_loads_from_the_debian_package_directory():
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {FASHION_MNIST_DIR} "
                    "(apt-get install dataset-fashion-mnist)")
    ds = load_dataset("fashion-mnist")
    _assert_well_formed(ds, (1, 28, 28))
    assert len(ds.y_train) == 60000 and len(ds.y_test) == 10000
    assert ds.classes[0] == "T-shirt/top"


def test_default_data_dir_is_only_known_for_fashion_mnist():
    assert default_data_dir("fashion-mnist") == Path("/usr/share/datasets/fashion-mnist")
    assert default_data_dir(DatasetName.MNIST) is None
    assert default_data_dir("cifar10") is None
    assert default_data_dir("digits") is None


# --- CIFAR-10 ---------------------------------------------------------------------------------


@pytest.mark.data
def test_real_cifar10_npz_subsample_decodes_to_nchw():
    if not CIFAR_DIR.is_dir():
        pytest.skip(f"CIFAR-10 npz not present at {CIFAR_DIR}")
    ds = load_dataset("cifar10", CIFAR_DIR, max_train=200, max_test=100)
    _assert_well_formed(ds, (3, 32, 32))
    assert ds.x_train.shape == (200, 3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
    assert ds.classes[0] == "airplane"
    # the .npz file itself is accepted too, with the same subset
    npz = next(CIFAR_DIR.glob("*.npz"))
    again = load_dataset("cifar10", npz, max_train=200, max_test=100)
    np.testing.assert_array_equal(ds.x_train, again.x_train)


def test_cifar10_npz_layout_from_a_file_or_its_directory(tmp_path):
    _write_cifar_npz(tmp_path / "tiny.npz")
    for where in (tmp_path, tmp_path / "tiny.npz"):
        ds = load_dataset("cifar10", where)
        _assert_well_formed(ds, (3, 32, 32))
        assert len(ds.y_train) == 5 and len(ds.y_test) == 3
        assert ds.classes[9] == "class9"
    assert load_dataset("cifar10", tmp_path, max_train=2).x_train.shape == (2, 3, 32, 32)


def test_cifar10_npz_with_a_corrupt_jpeg_names_the_image(tmp_path):
    path = tmp_path / "bad.npz"
    _write_cifar_npz(path)
    with np.load(path) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["test_jpeg"] = arrays["test_jpeg"].copy()
    arrays["test_jpeg"][: arrays["test_offsets"][1]] = 0  # wipe image 0
    np.savez(path, **arrays)
    with pytest.raises(A2QFlowError, match=r"test image 0 does not decode"):
        load_dataset("cifar10", path)


def test_cifar10_pickle_layout_from_the_batch_dir_or_its_parent(tmp_path):
    train, labels = _write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    for where in (tmp_path, tmp_path / "cifar-10-batches-py"):
        ds = load_dataset("cifar10", where)
        _assert_well_formed(ds, (3, 32, 32))
        assert len(ds.y_train) == 20 and len(ds.y_test) == 4
        assert ds.classes == tuple("abcdefghij")
        np.testing.assert_array_equal(np.round(ds.x_train * 255).reshape(20, -1), train)
        np.testing.assert_array_equal(ds.y_train, labels)


def test_cifar10_incomplete_pickle_batches_name_what_is_missing(tmp_path):
    _write_cifar_pickles(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(A2QFlowError, match="missing data_batch_3"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_corrupt_pickle_batch_names_the_file(tmp_path):
    _write_cifar_pickles(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(A2QFlowError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(tmp_path / "test_batch") in str(err.value)


# --- missing data sets and bad names ----------------------------------------------------------


def test_missing_mnist_names_directory_files_and_fix(tmp_path):
    with pytest.raises(A2QFlowError) as err:
        load_dataset("mnist", tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg
    assert all(name in msg for name in IDX_FILES.values())
    assert err.value.fix and "--data-dir" in err.value.fix


def test_missing_fashion_mnist_suggests_the_debian_package(tmp_path):
    with pytest.raises(A2QFlowError) as err:
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    assert "apt-get install dataset-fashion-mnist" in err.value.fix


def test_missing_cifar10_names_directory_files_and_fix(tmp_path):
    with pytest.raises(A2QFlowError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg
    assert "data_batch_1" in msg and "test_batch" in msg and ".npz" in msg
    assert "CIFAR-10 python version" in err.value.fix


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_dataset_without_a_default_directory_needs_data_dir(name):
    with pytest.raises(A2QFlowError, match="needs a data directory") as err:
        load_dataset(name)
    assert "--data-dir" in err.value.fix


def test_unknown_dataset_name_lists_the_allowed_names():
    with pytest.raises(A2QFlowError) as err:
        load_dataset("imagenet")
    assert "'imagenet'" in str(err.value)
    assert all(repr(m.value) in err.value.fix for m in DatasetName)


@pytest.mark.data
@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(), reason="CIFAR-10 subset not found")
def test_callers_get_writable_copies_of_cached_arrays():
    ds = load_dataset("cifar10", SHARED_DATA / "cifar10", max_train=50, max_test=20)
    assert all(a.flags.writeable for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
