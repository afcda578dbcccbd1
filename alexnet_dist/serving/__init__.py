"""A trained run for serving: the SavedModel (export.py) and predictions from it (predict.py)."""
