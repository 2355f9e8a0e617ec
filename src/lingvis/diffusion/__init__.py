"""Text-to-image diffusion: schedulers, the sampling loop with classifier-free guidance, training."""
