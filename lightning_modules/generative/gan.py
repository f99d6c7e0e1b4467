"""Generative adversarial network (Goodfellow et al. 2014) with the non-saturating generator loss:
the discriminator minimizes −log D(x) − log(1 − D(G(z))), the generator −log D(G(z)). Two
optimizers stepped by hand (Lightning's manual optimization), each chosen by name
(``model.generator_optimizer`` / ``model.discriminator_optimizer``; null = the ``optimizer`` group).
Logged: ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake`` (the discriminator's mean belief that
real and generated samples are real). A GAN has no likelihood: its ``val/loss`` (what the best
checkpoint minimizes) is the MMD between generated samples and the validation split."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch
import torch.nn.functional as F

from lightning_modules.generative.base import GenerativeModule, mmd, randn
from lightning_modules.optimizers import OptimizerFactory


class GANModule(GenerativeModule):
    TERMS = ("loss", "mmd")  # validation: the MMD to the validation split
    TRAIN_TERMS = ("d_loss", "g_loss", "d_real", "d_fake")
    supports = replace(GenerativeModule.supports, automatic_optimization=False)  # two optimizers stepped by hand

    def __init__(
        self,
        *args,
        generator_optimizer: Optional[OptimizerFactory | dict] = None,
        discriminator_optimizer: Optional[OptimizerFactory | dict] = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False
        from lightning_modules.rebuild import optimizer

        def own(given):  # a spec ({name, lr, ...}, as a checkpoint carries it), a factory, or None: the optimizer group's
            return optimizer(given) if isinstance(given, dict) else given or self.optimizer_factory

        self.g_factory, self.d_factory = own(generator_optimizer), own(discriminator_optimizer)

    def configure_optimizers(self):
        return [self.g_factory(self.net.generator), self.d_factory(self.net.discriminator)]

    def training_step(self, batch, batch_idx: int) -> None:
        real = self.levels.unit(batch[0])
        n = len(real)
        g_opt, d_opt = self.optimizers()
        fake = self.net.generate(torch.randn(n, self.net.latent, device=self.device))

        d_real, d_fake = self.net.discriminate(real), self.net.discriminate(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy_with_logits(
            d_fake, torch.zeros_like(d_fake)
        )
        self.check_finite(d_loss)
        d_opt.zero_grad()
        self.manual_backward(d_loss)
        d_opt.step()

        d_new = self.net.discriminate(fake)
        g_loss = F.binary_cross_entropy_with_logits(d_new, torch.ones_like(d_new))  # non-saturating: −log D(G(z))
        self.check_finite(g_loss)
        g_opt.zero_grad()
        self.manual_backward(g_loss)
        g_opt.step()
        self._log_terms(
            "train",
            {
                "d_loss": d_loss.detach(),
                "g_loss": g_loss.detach(),
                "d_real": torch.sigmoid(d_real).mean().detach(),
                "d_fake": torch.sigmoid(d_fake).mean().detach(),
            },
            n,
        )

    def terms(self, u, index):
        samples = self.net.generate(randn((len(u), self.net.latent), torch.Generator().manual_seed(0), self.device))
        distance = mmd(samples.flatten(1), u.flatten(1))
        return {"loss": distance, "mmd": distance}

    def sample(self, n, generator):
        return self.net.generate(randn((n, self.net.latent), generator, self.device))
