"""Benchmarks of the library through its public functions (`make bench`), and the article's NumPy program."""
