"""Training loops (plain PyTorch; the Ray Train drivers in ``ray_jobs/`` wrap these)."""
