"""Experiments over many runs: sweeps (sweep.py, on SLURM through slurm.py), their reports and statistics."""
