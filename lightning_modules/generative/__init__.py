"""The generative families' LightningModules (their networks are in ``lightning_modules/nets/generative.py``).

``model=<name>`` is generative when ``MODULES`` has it: it is trained by ``MODULES[name]`` (its network
is registered with ``generative=True``, which keeps the networks' tests apart; a test keeps the two
equal). What each module applies is its ``supports`` (``lightning_modules/capabilities.py``);
the ``model.*`` keys it takes rather than the network are its constructor's keyword-only arguments."""

from __future__ import annotations

import inspect

from lightning_modules.generative.base import GenerativeModule
from lightning_modules.generative.ddpm import DDPMModule
from lightning_modules.generative.gan import GANModule
from lightning_modules.generative.pixelcnn import PixelCNNModule
from lightning_modules.generative.vae import VAEModule

#: model.name → the LightningModule that trains it
MODULES: dict[str, type[GenerativeModule]] = {"vae": VAEModule, "gan": GANModule, "ddpm": DDPMModule, "pixelcnn": PixelCNNModule}


def module_keys(module_class: type[GenerativeModule]) -> tuple[str, ...]:
    """The ``model.*`` keys ``module_class`` takes itself (the VAE's beta, the DDPM's schedule, ...)."""
    params = inspect.signature(module_class.__init__).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


__all__ = ["GenerativeModule", "MODULES", "module_keys"]
