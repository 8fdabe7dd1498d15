"""What a training run does around the Lightning Trainer: callbacks (seeding, curves, calibration,
the run record), the atomic checkpoint writer, resuming, distillation's teachers and the
evaluation artifacts."""
