"""What every training loop shares: distributed set-up, autocast, checkpoints, logging, seeding."""
