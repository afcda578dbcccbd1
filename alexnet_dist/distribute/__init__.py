"""Distribution: backends behind one interface (runtime.py, chosen in backends.py), and where
each replica's model lives (placement.py). Importing the package loads nothing: the
watchdog process imports stop_signals.py without TensorFlow."""
