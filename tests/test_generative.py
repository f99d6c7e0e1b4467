"""The generative families: shapes and finite losses, the ELBO's terms, the KL at the prior, the
autoregressive mask (a gradient test), the diffusion forward process against its closed form, a GAN
step that moves both networks, seeded sampling, the data's levels, and each family end to end."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONFIG_DIR, compose_config
from lightning_modules.generative import MODULES, module_keys
from lightning_modules.generative.base import mmd
from lightning_modules.generative.ddpm import beta_schedule
from lightning_modules.generative.levels import Levels
from lightning_modules.generative.vae import gaussian_kl, reconstruction_nll
from lightning_modules.nets import build_net
from lightning_modules.optimizers import optimizer_factory

SHAPES = {"image": (1, 8, 8), "signal": (1, 40)}
SMALL = {
    "vae": {"hidden": [32]},
    "gan": {"hidden": [32]},
    "ddpm": {"hidden": [32, 32], "timesteps": 20},
    "pixelcnn": {"channels": 8, "blocks": 1},
}


def module_for(name: str, kind: str = "image", shape=None, levels: int = 17, **overrides):
    torch.manual_seed(0)
    keys = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / f"{name}.yaml"))
    keys.pop("name"), keys.pop("levels")
    keys.update(SMALL[name])
    keys.update(overrides)
    module_class = MODULES[name]
    module_kwargs = {k: keys.pop(k) for k in module_keys(module_class) if k in keys}
    module_kwargs.pop("generator_optimizer", None), module_kwargs.pop("discriminator_optimizer", None)
    net = build_net(name, shape or SHAPES[kind], kind, levels, **keys)
    return module_class(net, Levels(0.0, 16.0, levels), optimizer_factory("adam", lr=1e-3), None, **module_kwargs)


def digits_like(n: int, shape) -> torch.Tensor:
    return torch.randint(0, 17, (n, *shape)).float()  # values 0…16, as digits


@pytest.mark.parametrize("kind", ["image", "signal"])
@pytest.mark.parametrize("name", sorted(MODULES))
def test_losses_are_finite_and_samples_have_the_data_shape_and_range(name, kind):
    module = module_for(name, kind)
    x = digits_like(6, SHAPES[kind])
    terms, n = module._terms((x, torch.zeros(6)))
    assert n == 6 and all(torch.isfinite(v[0] if isinstance(v, tuple) else v) for v in terms.values())
    samples = module.sample_data(5, seed=1)
    assert samples.shape == (5, *SHAPES[kind])
    assert samples.min() >= 0 and samples.max() <= 16 and torch.equal(samples, samples.round())  # on the data's levels
    assert torch.equal(samples, module.sample_data(5, seed=1)) and not torch.equal(samples, module.sample_data(5, seed=2))


def test_elbo_terms_add_up_and_kl_vanishes_at_the_prior():
    module = module_for("vae")
    x = digits_like(7, SHAPES["image"])
    u, index = module.levels.unit(x), module.levels.index(x)
    torch.manual_seed(3)
    terms = module.terms(u, index)
    torch.manual_seed(3)  # the same reparameterization noise
    logits, mu, logvar = module.net(u)
    by_hand = -torch.log_softmax(logits, 1).gather(1, index.unsqueeze(1)).squeeze(1).flatten(1).sum(1)  # −log p(x|z) per sample
    assert torch.allclose(terms["recon"], by_hand.mean()) and torch.allclose(reconstruction_nll(logits, index), by_hand)
    assert torch.allclose(terms["loss"], terms["recon"] + terms["kl"])  # beta = 1
    assert torch.allclose(terms["bits_per_dim"], (terms["recon"] + terms["kl"]) / (64 * math.log(2)))
    zeros = torch.zeros(4, 3)
    assert torch.equal(gaussian_kl(zeros, zeros), torch.zeros(4))  # q(z|x) = N(0, I) = p(z)
    assert torch.allclose(gaussian_kl(torch.ones(1, 3), torch.zeros(1, 3)), torch.tensor([1.5]))  # ½ Σ μ²
    assert float(gaussian_kl(torch.zeros(1, 2), torch.full((1, 2), 1.0))) > 0


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 5, 6), (1, 40), (2, 12)], ids=lambda s: "x".join(map(str, s)))
def test_pixelcnn_output_at_a_position_never_depends_on_that_position_or_later(shape):
    torch.manual_seed(0)
    net = build_net("pixelcnn", shape, "image" if len(shape) == 3 else "signal", 5, channels=8, blocks=2, kernel=5)
    positions = torch.cartesian_prod(*(torch.arange(s) for s in shape[1:])).view(-1, len(shape) - 1).tolist()
    for i in (0, 1, len(positions) // 2, len(positions) - 1):
        u = torch.rand(2, *shape, requires_grad=True)
        net(u)[(slice(None), slice(None), slice(None), *positions[i])].sum().backward()
        grad = u.grad.abs().sum((0, 1)).flatten()  # per position, raster order
        assert grad[i:].sum() == 0, f"position {i} sees positions >= itself"
        if i > 0:
            assert grad[:i].sum() > 0  # and it does see the earlier ones


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_diffusion_forward_process_matches_its_closed_form(schedule):
    module = module_for("ddpm", timesteps=50, schedule=schedule)
    torch.manual_seed(0)
    x0 = torch.tensor([0.8, -0.5, 0.0])
    x = x0.repeat(200_000, 1)
    for t in range(30):  # 30 single steps: x_t = √(1 − β_t) x_{t−1} + √β_t ε
        x = (1 - module.betas[t]).sqrt() * x + module.betas[t].sqrt() * torch.randn_like(x)
    ab = module.alpha_bar[29]
    assert torch.allclose(ab, torch.prod(1 - module.betas[:30]))
    assert torch.allclose(x.mean(0), ab.sqrt() * x0, atol=0.01) and torch.allclose(x.var(0), (1 - ab).expand(3), atol=0.01)
    closed = module.q_sample(x0.repeat(200_000, 1), torch.full((200_000,), 29), torch.randn(200_000, 3))
    assert torch.allclose(closed.mean(0), x.mean(0), atol=0.01) and torch.allclose(closed.var(0), x.var(0), atol=0.01)
    assert module.alpha_bar[-1] < 0.02  # the chain ends close to pure noise


def test_beta_schedules_check_their_keys():
    with pytest.raises(ValueError, match=r"model.schedule='quadratic': unknown; valid: linear, cosine"):
        beta_schedule("quadratic", 10)
    with pytest.raises(ValueError, match=r"model.timesteps=1: must be an integer >= 2"):
        beta_schedule("linear", 1)


def test_gan_training_step_moves_the_generator_and_the_discriminator():
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    module = module_for("gan")
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    x = digits_like(64, SHAPES["image"])
    trainer = pl.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(module, DataLoader(TensorDataset(x, torch.zeros(64)), batch_size=16))
    changed = {k.split(".")[0] for k, v in module.net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"generator", "discriminator"}
    g_opt, d_opt = module.optimizers()
    assert [len(o.optimizer.state) for o in (g_opt, d_opt)] == [
        len(list(module.net.generator.parameters())),
        len(list(module.net.discriminator.parameters())),
    ]
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"} <= set(trainer.callback_metrics)


def test_levels_are_the_datas_own_or_bins():
    digits = Levels.fit(digits_like(500, (64,)))
    assert (digits.low, digits.high, digits.count) == (0.0, 16.0, 17)
    x = torch.tensor([0.0, 3.0, 16.0])
    assert torch.equal(digits.index(x), torch.tensor([0, 3, 16])) and torch.equal(digits.to_data(digits.unit(x)), x)
    signal = Levels.fit(torch.randn(1000, 40))
    assert signal.count == 32 and Levels.fit(torch.randn(100), levels=8).count == 8
    with pytest.raises(ValueError, match="constant"):
        Levels.fit(torch.ones(10))


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    torch.manual_seed(0)
    a, b = torch.randn(400, 5), torch.randn(400, 5)
    assert abs(float(mmd(a, b))) < 0.02 < float(mmd(a + 0.5, b)) < float(mmd(a + 2, b))


@pytest.mark.parametrize(
    "name,data",
    [("vae", "digits"), ("gan", "digits"), ("ddpm", "digits"), ("pixelcnn", "digits"), ("vae", "mnist1d"), ("pixelcnn", "mnist1d")],
)
def test_each_family_trains_from_the_config(train_run, name, data):
    small = {
        "vae": [],
        "gan": ["model.hidden=[64]"],
        "ddpm": ["model.hidden=[64,64]", "model.timesteps=50"],
        "pixelcnn": ["model.channels=16", "model.blocks=1"],
    }[name]
    figures = ["callbacks.figures=true", "callbacks.histograms_every=null", "model.latent=2"] if (name, data) == ("vae", "digits") else []
    run_dir, record = train_run(f"model={name}", f"data={data}", "trainer.max_epochs=2", *small, *figures)
    assert record["model"] == name and math.isfinite(record["test/loss"]) and math.isfinite(record["test/mmd"])
    assert math.isfinite(record["val/loss_best"])
    if name in ("vae", "pixelcnn"):
        assert 0 < record["test/bits_per_dim"] < math.log2(17 if data == "digits" else 32)  # better than uniform over the levels
    if figures:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        assert {"samples.png", "reconstructions.png", "latent_space.png"} <= {p.name for p in (run_dir / "figures").iterdir()}
        events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0}).Reload()
        assert "figures/samples" in events.Tags()["images"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["model=gan", "scheduler=cosine"],
            "scheduler=cosine: model=gan steps its optimizers by hand and does not support it; use scheduler=none",
        ),
        (["model=vae", "regularization.dropout=0.1"], "regularization.dropout=0.1: not applied by the generative model 'vae'; set it to 0"),
        (["model=pixelcnn", "model.levels=1"], "model.levels=1: must be an integer >= 2 or null"),
        (["model=pixelcnn", "model.kernel=4"], "model.kernel=4: must be an odd integer >= 3"),
        (["model=vae", "data=moons"], "model=vae: cannot take tabular data of shape (2,); it takes image, signal data"),
        (
            ["model=gan", "trainer=ddp_cpu"],
            "trainer.strategy=ddp: model=gan steps its optimizers by hand and does not support it; use trainer=cpu or trainer=gpu",
        ),
        (
            ["model=gan", "regularization.grad_clip=1.0"],
            "regularization.grad_clip=1.0: model=gan steps its optimizers by hand and does not support it; use null",
        ),
        (["model=gan", "~model.generator_optimizer.lr"], "model.generator_optimizer.lr: missing; optimizer 'adam' needs it"),
        (
            ["model=gan", "+model.generator_optimizer.moment=1"],
            "model.generator_optimizer.moment: not accepted by optimizer 'adam'; accepted: lr, betas, eps, amsgrad",
        ),
        (["model=ddpm", "model.time_dim=63"], "model.time_dim=63: must be an even integer (sines and cosines in pairs)"),
        (["model=vae", "optimizer=sam"], "optimizer=sam: not supported by the generative model 'vae'; choose another optimizer"),
        (
            ["model=vae", "callbacks.stop_at_train_acc=0.9"],
            "callbacks.stop_at_train_acc=0.9: generative models have no accuracy; leave it null",
        ),
    ],
)
def test_bad_generative_settings_are_one_line_errors(train_run, overrides, message):
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="^" + __import__("re").escape(message) + "$"):
        train_run(*overrides)


def test_the_generative_networks_and_modules_name_the_same_families():
    from lightning_modules.nets import MODELS

    assert {e.name for e in MODELS if e.info.get("generative")} == set(MODULES)


def test_a_generative_family_accepts_batch_norm_off_and_refuses_a_sam_optimizer_of_its_own(cli, tmp_path):
    """batch_norm=false is off, which these families are (as null); the GAN's own optimizers are checked like the group's."""
    from experiments.build import check_generative

    check_generative(compose_config("model=vae", "regularization.batch_norm=false", "regularization.mix_prob=0.5"))
    code, _, err = cli("model=gan", "+model.generator_optimizer.base=adam", "model.generator_optimizer.name=sam")
    assert (
        code == 2
        and err.strip()
        == "error: model.generator_optimizer.name=sam: not supported by the generative model 'gan'; choose another optimizer"
    )
