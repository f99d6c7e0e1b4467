"""The generative families' LightningModules (their networks are in ``lightning_modules/nets/generative.py``)."""

from lightning_modules.generative.base import GenerativeModule
from lightning_modules.generative.ddpm import DDPMModule
from lightning_modules.generative.gan import GANModule
from lightning_modules.generative.pixelcnn import PixelCNNModule
from lightning_modules.generative.vae import VAEModule

#: model.name → (LightningModule, the model.* keys it takes rather than the network)
MODULES = {
    "vae": (VAEModule, ("beta",)),
    "gan": (GANModule, ("generator_optimizer", "discriminator_optimizer")),
    "ddpm": (DDPMModule, ("timesteps", "schedule", "beta_start", "beta_end")),
    "pixelcnn": (PixelCNNModule, ()),
}

__all__ = ["GenerativeModule", "MODULES"]
