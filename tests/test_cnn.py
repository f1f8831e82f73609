"""The CNN experiment: data sources, the post's architecture, and its seed numbers."""

import math

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxpm import backends as be
from jaxpm.errors import ConfigError
from jaxpm.experiments.cnn import images, nets
from jaxpm.prepare import prepare

# --------------------------------------------------------------------------- data


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits_offline(dtype):
    x, y = images.load_images("digits", 30, dtype=dtype)
    assert x.shape == (30, 28, 28, 1) and x.dtype == dtype
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert y.dtype == np.int64 and set(y) <= set(range(10))
    held_out, _ = images.load_images("digits", 30, offset=30, dtype=dtype)
    assert not np.allclose(x, held_out)


def test_digits_too_many():
    with pytest.raises(ConfigError) as e:
        images.load_images("digits", 1500, offset=500)
    assert e.value.key == "cnn.n" and "1797" in e.value.message


def test_mnist_through_tfds_mock():
    with tfds.testing.mock_data(num_examples=30):
        x, y = images.load_images("mnist", 20, offset=5, data_dir="/nonexistent")
    assert x.shape == (20, 28, 28, 1) and 0.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (20,) and set(y) <= set(range(10))


def test_mnist_missing_never_downloads(tmp_path):
    with pytest.raises(ConfigError) as e:
        images.load_images("mnist", 10, data_dir=str(tmp_path))
    assert e.value.key == "cnn.data_dir" and "download_and_prepare" in e.value.message
    assert not any(tmp_path.rglob("*.tfrecord*"))


@pytest.mark.parametrize("shape", [(12, 28, 28), (12, 28, 28, 1), (12, 784)])
def test_npz_shapes(tmp_path, shape):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, images=rng.integers(0, 256, size=shape), labels=rng.integers(0, 10, size=12))
    x, y = images.load_images("npz", 10, path=str(path))
    assert x.shape == (10, 28, 28, 1) and x.max() <= 1.0 and y.shape == (10,)


def test_npz_bad_shape(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((5, 20, 20)), labels=np.zeros(5))
    with pytest.raises(ConfigError) as e:
        images.load_images("npz", 5, path=str(path))
    assert e.value.key == "cnn.path" and "(5, 20, 20)" in e.value.message


# --------------------------------------------------------------------------- network


def test_post_architecture():
    module = nets.build_network()
    shapes = nets.param_shapes(module)
    assert set(shapes) == {
        f"{layer}_{param}" for layer in ("Conv_0", "Conv_1", "Dense_0", "Dense_1") for param in ("kernel", "bias")
    }
    assert shapes["Conv_0_kernel"] == (3, 3, 1, 32) and shapes["Dense_0_kernel"] == (3136, 256)
    assert sum(math.prod(s) for s in shapes.values()) == 824_458


def test_zero_weights_give_zero_logits():
    module = nets.build_network([{"conv": 2, "kernel": 3}, "relu", {"avg_pool": 2}, "flatten", {"dense": 10}])
    params = {k: np.zeros(s) for k, s in nets.param_shapes(module).items()}
    logits = nets.apply_fn(module)(params, np.ones((3, 28, 28, 1)))
    assert logits.shape == (3, 10) and np.all(np.asarray(logits) == 0)


@pytest.mark.parametrize(
    "layers, key, fragment",
    [
        ([{"convv": 3}], "cnn.layers[0]", "did you mean 'conv'"),
        (["relu", "softmaxx"], "cnn.layers[1]", "unknown layer 'softmaxx'"),
        ([{"dense": -1}], "cnn.layers[0]", "positive integer"),
        ([{"conv": 4, "stride": 2}], "cnn.layers[0]", "stride"),
    ],
)
def test_bad_layers(layers, key, fragment):
    with pytest.raises(ConfigError) as e:
        nets.build_network(layers)
    assert e.value.key.startswith(key) and fragment in e.value.message


# --------------------------------------------------------------------------- seed numbers


@pytest.fixture(scope="module")
def cnn():
    return prepare("cnn", ["check_grad.enabled=false"])


@pytest.mark.parametrize("backend", ["c", "numba", "jax"])
def test_post_cnn_seed_numbers(cnn, backend):
    """The post's CNN at the initial point (all weights 0), on every backend, to 1e-6."""
    compiled = be.compile_backend(cnn.model, backend)
    result = be.evaluate(cnn.model, compiled, cnn.point, repeats=1)
    assert result["logp"] == pytest.approx(-759928.81029946, rel=1e-6)
    first = [v.name for v in cnn.model.value_vars][0]
    assert first.startswith("Conv_0")
    assert np.all(np.asarray(result["dlogp"][first]) == 0.0)
    assert len(result["logp_terms"]) == 9  # 8 weight priors and the labels


# --------------------------------------------------------------------------- where fits start

SMALL = ["cnn.n=20", "cnn.holdout=0", "cnn.layers=[{conv: 4, kernel: 3}, relu, {avg_pool: 2}, flatten, {dense: 10}]"]


@pytest.fixture(scope="module")
def small_cnn():
    return prepare("cnn", ["check_grad.enabled=false", *SMALL])


def test_flax_init_is_random_and_deterministic():
    module = nets.build_network([{"conv": 4, "kernel": 3}, "relu", {"avg_pool": 2}, "flatten", {"dense": 10}])
    first, again, other = (nets.init_params(module, seed=s) for s in (1, 1, 2))
    shapes = nets.param_shapes(module)
    assert list(first) == list(shapes)  # the models' order, kernel before bias
    for name, shape in shapes.items():
        assert first[name].shape == shape and first[name].dtype == np.float64
        np.testing.assert_array_equal(first[name], again[name])
    for name in ("Conv_0_kernel", "Dense_0_kernel"):
        assert np.all(first[name] != 0) and not np.array_equal(first[name], other[name])
        # LeCun normal: std ~ 1/sqrt(fan_in), so the activations stay of order 1
        fan_in = math.prod(shapes[name][:-1])
        assert 0.5 < first[name].std() * math.sqrt(fan_in) < 1.5
    assert np.all(first["Dense_0_bias"] == 0)


def test_fit_start_comes_from_the_sample_seed(small_cnn):
    s = small_cnn.spec.sample
    assert s.start == "flax"  # the packaged config's fit
    assert "flax" in small_cnn.experiment.fit_starts

    def start(seed):
        return small_cnn.experiment.fit_start(s.start, small_cnn.ctx.built, seed)

    first = start(7)
    assert list(first) == [v.name for v in small_cnn.model.value_vars]
    again, other = start(7), start(8)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["Conv_0_kernel"], other["Conv_0_kernel"])


def test_inference_dtype_is_for_the_fit_only(small_cnn):
    """cnn.inference_dtype: float32 rebuilds the model for the fit; evaluation keeps float64."""
    assert (small_cnn.spec.cnn.dtype, small_cnn.spec.cnn.inference_dtype) == ("float64", "float32")
    fit_model = small_cnn.inference_model()
    assert fit_model is not small_cnn.model and fit_model is small_cnn.inference_model()  # built once
    assert [v.name for v in fit_model.value_vars] == [v.name for v in small_cnn.model.value_vars]
    point = small_cnn.experiment.fit_start("flax", small_cnn.ctx.built, 1)
    lp64 = float(small_cnn.model.compile_logp()(point))
    lp32 = float(fit_model.compile_logp()(point))
    assert lp32 != lp64 and lp32 == pytest.approx(lp64, rel=1e-5)  # float32 rounding, no more
    same = prepare("cnn", ["check_grad.enabled=false", *SMALL, "cnn.inference_dtype=null"])
    assert same.inference_model() is same.model
