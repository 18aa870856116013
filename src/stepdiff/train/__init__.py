"""Projector-only instruction tuning: configs, data mixing, the training
loop with resumable checkpoints, the meta-device dry run and the ``stepdiff train`` CLI."""
