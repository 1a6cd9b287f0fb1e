"""The shared trainer, optimisers and learning-rate schedules."""
