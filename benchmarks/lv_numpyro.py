"""The reference: Lotka–Volterra on the lynx–hare pelts in pure numpyro + diffrax.

The model of posteriordb's ``hudson_lynx_hare-lotka_volterra`` (Carpenter's Stan case
study), written the way a numpyro user writes it, with the settings of issue 7's
measurement: Dopri5, ``rtol = atol = 1e-6``, ``BacksolveAdjoint``, numpyro's NUTS with its
defaults (diagonal mass matrix, windowed adaptation, ``init_to_uniform``).

    theta[0], theta[2] ~ Normal(1, 0.5),  theta[1], theta[3] ~ Normal(0.05, 0.05), theta > 0
    z_init ~ LogNormal(log 10, 1);  sigma ~ LogNormal(-1, 1)
    z = solve(theta, z_init) at t = 0..20;  pelts[t] ~ LogNormal(log z[t], sigma)

Used by ``bench_lotka_volterra.py``; importable on its own (it sets nothing global: the
caller chooses ``jax_enable_x64`` and the host device count before JAX starts).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "configs" / "data" / "hudson_lynx_hare.csv"


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """Save times (years after 1900) and pelts (thousands; columns hare, lynx)."""
    table = np.genfromtxt(DATA, delimiter=",", names=True)
    return np.asarray(table["year_offset"], float), np.stack([table["hare"], table["lynx"]], axis=1)


def vector_field(t, z, theta):
    u, v = z[0], z[1]
    alpha, beta, gamma, delta = theta[0], theta[1], theta[2], theta[3]
    import jax.numpy as jnp

    return jnp.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


def model(ts, pelts=None):
    import diffrax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    mu = jnp.array([1.0, 0.05, 1.0, 0.05])
    sd = jnp.array([0.5, 0.05, 0.5, 0.05])
    theta = numpyro.sample("theta", dist.TruncatedNormal(mu, sd, low=0.0))
    z_init = numpyro.sample("z_init", dist.LogNormal(jnp.log(10.0), 1.0).expand([2]))
    sigma = numpyro.sample("sigma", dist.LogNormal(-1.0, 1.0).expand([2]))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Dopri5(),
        t0=0.0,
        t1=float(ts[-1]),
        dt0=None,
        y0=z_init,
        args=theta,
        saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6),
        adjoint=diffrax.BacksolveAdjoint(),
        max_steps=4096,
    )
    numpyro.sample("pelts", dist.LogNormal(jnp.log(sol.ys), sigma), obs=pelts)


def sample(*, draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int = 0, progress: bool = False,
           dense_mass: bool = False):
    """Run numpyro's NUTS; chains in parallel when JAX has a device per chain.
    ``dense_mass``: numpyro's full mass matrix instead of its default diagonal one.

    Returns ``(idata, wall_seconds, chain_method)``: the wall time covers tracing, XLA
    compilation and sampling (numpyro compiles the whole sampler in one piece).
    """
    import arviz as az
    import jax
    from numpyro.infer import MCMC, NUTS

    ts, pelts = load_data()
    method = "parallel" if jax.local_device_count() >= chains else "sequential"
    mcmc = MCMC(
        NUTS(model, target_accept_prob=0.8, dense_mass=dense_mass),
        num_warmup=tune,
        num_samples=draws,
        num_chains=chains,
        chain_method=method,
        progress_bar=progress,
    )
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), ts, pelts=pelts, extra_fields=("diverging", "num_steps"))
    jax.block_until_ready(mcmc.get_samples())
    wall = time.perf_counter() - start
    return az.from_numpyro(mcmc), wall, method
