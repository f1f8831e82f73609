"""Image loading (digits, mnist via tfds, npz) and networks from layer lists."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import jaxpm  # noqa: F401 - float64 on
from jaxpm.errors import ConfigError
from jaxpm.experiments.cnn import images, nets

# --------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits_shapes_dtype_range(dtype):
    x, y = images.load_images("digits", 50, dtype=dtype)
    assert x.shape == (50, 28, 28, 1) and x.dtype == np.dtype(dtype)
    assert y.shape == (50,) and y.dtype == np.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
    assert set(y) <= set(range(10)) and len(set(y)) == 10


def test_digits_are_scikit_learns_resized_in_order():
    from sklearn.datasets import load_digits

    x, y = images.load_images("digits", 20, offset=5)
    digits = load_digits()
    np.testing.assert_array_equal(y, digits.target[5:25])
    # Bilinear with half-pixel centres is scipy's first-order zoom on the pixel grid.
    reference = ndimage.zoom(digits.images[5:25] / 16, (1, 3.5, 3.5), order=1, mode="nearest", grid_mode=True)
    np.testing.assert_allclose(x[..., 0], reference, atol=1e-12)


def test_digits_deterministic_and_offset():
    a, ya = images.load_images("digits", 30)
    b, yb = images.load_images("digits", 30)
    c, yc = images.load_images("digits", 30, offset=30)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(a, c)
    both, yboth = images.load_images("digits", 60)
    np.testing.assert_array_equal(both[30:], c)
    np.testing.assert_array_equal(yboth[30:], yc)


def test_digits_too_many():
    with pytest.raises(ConfigError, match="1797") as e:
        images.load_images("digits", 1000, offset=1000)
    assert e.value.key == "cnn.n"
    with pytest.raises(ConfigError) as e:
        images.load_images("digits", 0)
    assert e.value.key == "cnn.n"


def test_unknown_source():
    with pytest.raises(ConfigError, match="did you mean 'digits'") as e:
        images.load_images("digit", 10)
    assert e.value.key == "cnn.source"


# --------------------------------------------------------------------------------------
# mnist through tensorflow-datasets (mocked: no files, no network)
# --------------------------------------------------------------------------------------


def test_mnist_mocked():
    import tensorflow_datasets as tfds  # a dependency: a broken install must fail here, not skip
    with tfds.testing.mock_data(num_examples=12):
        x, y = images.load_images("mnist", 5, offset=3, dtype="float32")
        raw = tfds.data_source("mnist", split="train", download=False)
        expected = np.stack([raw[i]["image"] for i in range(3, 8)]) / 255.0
        labels = [raw[i]["label"] for i in range(3, 8)]
        with pytest.raises(ConfigError, match="12 images") as e:
            images.load_images("mnist", 10, offset=5)
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.float32
    assert y.shape == (5,) and y.dtype == np.int64
    assert 0 <= x.min() and x.max() <= 1
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    assert e.value.key == "cnn.n"


def test_mnist_missing_never_downloads(tmp_path):
    with pytest.raises(ConfigError, match="download_and_prepare") as e:
        images.load_images("mnist", 5, data_dir=str(tmp_path))
    assert e.value.key == "cnn.data_dir"
    assert str(tmp_path) in e.value.message and "file_format='array_record'" in e.value.message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or prepared


# --------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pixel_dtype", [np.uint8, np.int64])
@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1), (784,)])
def test_npz_round_trip(tmp_path, shape, pixel_dtype):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(8, 28, 28)).astype(pixel_dtype)
    labels = rng.integers(0, 10, size=8)
    path = tmp_path / "d.npz"
    np.savez(path, images=pixels.reshape(8, *shape), labels=labels)
    x, y = images.load_images("npz", 4, offset=2, path=str(path))
    np.testing.assert_allclose(x[..., 0], pixels[2:6] / 255.0)
    np.testing.assert_array_equal(y, labels[2:6])
    assert x.shape == (4, 28, 28, 1) and y.dtype == np.int64


def test_npz_x_y_names_and_float_images(tmp_path):
    path = tmp_path / "d.npz"
    pixels = np.linspace(0, 1, 3 * 784).reshape(3, 784)
    np.savez(path, x=pixels, y=np.array([1.0, 2.0, 3.0]))
    x, y = images.load_images("npz", 3, path=str(path), dtype="float32")
    np.testing.assert_allclose(x.reshape(3, 784), pixels, rtol=1e-6)
    np.testing.assert_array_equal(y, [1, 2, 3])


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"images": np.zeros((4, 28, 27)), "labels": np.zeros(4, int)}, "expected images of shape"),
        ({"images": np.zeros((4, 28, 28)), "labels": np.zeros(3, int)}, "labels"),
        ({"pixels": np.zeros((4, 28, 28)), "labels": np.zeros(4, int)}, "needs arrays 'images'"),
        ({"images": np.full((4, 28, 28), 255.0), "labels": np.zeros(4, int)}, r"floats in \[0, 1\]"),
        ({"images": np.full((4, 28, 28), 256), "labels": np.zeros(4, int)}, "integers 0..255"),
        ({"images": np.zeros((4, 28, 28)), "labels": np.array([0, 1, 2.5, 3])}, "whole numbers"),
    ],
)
def test_npz_bad_arrays(tmp_path, arrays, match):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=match) as e:
        images.load_images("npz", 2, path=str(path))
    assert e.value.key == "cnn.path"


def test_npz_missing_file_and_too_few(tmp_path):
    with pytest.raises(ConfigError, match="not found") as e:
        images.load_images("npz", 2, path=str(tmp_path / "nope.npz"))
    assert e.value.key == "cnn.path"
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((4, 28, 28), np.uint8), labels=np.zeros(4, int))
    with pytest.raises(ConfigError, match="has 4 images") as e:
        images.load_images("npz", 5, path=str(path))
    assert e.value.key == "cnn.n"


# --------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------

POST_SHAPES = {
    "Conv_0_kernel": (3, 3, 1, 32),
    "Conv_0_bias": (32,),
    "Conv_1_kernel": (3, 3, 32, 64),
    "Conv_1_bias": (64,),
    "Dense_0_kernel": (3136, 256),
    "Dense_0_bias": (256,),
    "Dense_1_kernel": (256, 10),
    "Dense_1_bias": (10,),
}


def test_post_cnn_shapes_and_count():
    shapes = nets.param_shapes(nets.build_network())
    assert list(shapes.items()) == list(POST_SHAPES.items())  # names and order
    assert sum(math.prod(s) for s in shapes.values()) == 824_458


def test_equal_lists_give_equal_hashable_modules():
    a, b = nets.build_network(), nets.build_network(list(nets.POST_CNN))
    assert a == b and hash(a) == hash(b)
    assert a != nets.build_network([*nets.POST_CNN[:-1], {"dense": 5}])


def test_apply_fn_matches_flax_and_zero_params_give_zero_logits():
    module = nets.build_network()
    f = jax.jit(nets.apply_fn(module))
    x = jnp.asarray(images.load_images("digits", 3)[0])
    zeros = {k: jnp.zeros(s) for k, s in POST_SHAPES.items()}
    assert f(zeros, x).shape == (3, 10)
    np.testing.assert_array_equal(f(zeros, x), 0.0)
    rng = np.random.default_rng(1)
    flat = {k: rng.normal(0, 0.1, s) for k, s in POST_SHAPES.items()}
    layers = ("Conv_0", "Conv_1", "Dense_0", "Dense_1")
    nested = {layer: {p: flat[f"{layer}_{p}"] for p in ("kernel", "bias")} for layer in layers}
    np.testing.assert_allclose(f(flat, x), module.apply({"params": nested}, x), rtol=1e-10)


def test_custom_architecture():
    layers = [
        {"conv": 4, "kernel": [5, 3], "padding": "valid"},
        "tanh",
        {"max_pool": 2},
        "flatten",
        {"dense": 7},
        "sigmoid",
        {"dense": 3},
    ]
    module = nets.build_network(layers)
    shapes = nets.param_shapes(module, (1, 12, 12, 1))
    # VALID 5x3 conv: 12x12 -> 8x10; pool 2: -> 4x5; 4*5*4 = 80 features
    assert shapes == {
        "Conv_0_kernel": (5, 3, 1, 4),
        "Conv_0_bias": (4,),
        "Dense_0_kernel": (80, 7),
        "Dense_0_bias": (7,),
        "Dense_1_kernel": (7, 3),
        "Dense_1_bias": (3,),
    }
    params = {k: jnp.ones(s) * 0.1 for k, s in shapes.items()}
    out = nets.apply_fn(module)(params, jnp.ones((2, 12, 12, 1)))
    assert out.shape == (2, 3) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize(
    "layers, key, match",
    [
        ([{"conv": 32}, "flatten", {"convv": 10}], "cnn.layers[2]", "unknown layer 'convv'; did you mean 'conv'"),
        (["flatten", "reul"], "cnn.layers[1]", "did you mean 'relu'"),
        ([{"conv": 32, "kernal": 3}, "flatten"], "cnn.layers[0]", "did you mean 'kernel'"),
        ([{"conv": 0}, "flatten"], "cnn.layers[0]", "positive integer"),
        ([{"avg_pool": [2, 2, 2]}, "flatten"], "cnn.layers[0]", r"\[height, width\]"),
        (["conv", "flatten"], "cnn.layers[0]", "needs a size"),
        ([{"conv": 8, "dense": 3}, "flatten"], "cnn.layers[0]", "one layer per list item"),
        (["flatten", {"avg_pool": 2}], "cnn.layers[1]", "before 'flatten'"),
        ([{"dense": 10}], "cnn.layers", "no 'flatten'"),
        ([], "cnn.layers", "non-empty"),
    ],
)
def test_bad_layers(layers, key, match):
    with pytest.raises(ConfigError, match=match) as e:
        nets.build_network(layers)
    assert e.value.key == key


def test_pools_that_shrink_images_to_nothing():
    module = nets.build_network([{"avg_pool": 4}, {"avg_pool": 4}, {"avg_pool": 4}, "flatten", {"dense": 2}])
    with pytest.raises(ConfigError, match="to nothing") as e:
        nets.param_shapes(module)
    assert e.value.key == "cnn.layers[2]"
