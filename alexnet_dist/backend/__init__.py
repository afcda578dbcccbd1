"""What the plain Keras model code needs from the backend it runs on (xla.py)."""
