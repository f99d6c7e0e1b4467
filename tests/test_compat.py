"""The private Lightning and TensorBoard attributes the template relies on (lightning_modules/compat.py)
still exist: an upgrade that moves them fails here, by name, instead of somewhere in a run."""

from __future__ import annotations


def test_lightning_still_says_which_steps_its_logger_writes():
    import pytorch_lightning as pl

    from lightning_modules.compat import logger_writes_this_step

    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=1)
    assert hasattr(trainer._logger_connector, "should_update_logs"), f"pytorch-lightning {pl.__version__} moved it"
    assert logger_writes_this_step(trainer) is True  # step 0 with log_every_n_steps=1


def test_tensorboard_still_hands_out_its_file_writer(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from lightning_modules.compat import tensorboard_file_writer

    writer = SummaryWriter(log_dir=str(tmp_path))
    file_writer = tensorboard_file_writer(writer)
    assert callable(getattr(file_writer, "add_summary", None)) and file_writer.get_logdir() == str(tmp_path)
    writer.close()


def test_lightning_still_says_which_cluster_environment_it_chose():
    import pytorch_lightning as pl
    from lightning_fabric.plugins.environments import LightningEnvironment

    from lightning_modules.compat import cluster_environment

    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert isinstance(cluster_environment(trainer), LightningEnvironment), f"pytorch-lightning {pl.__version__} moved it"
