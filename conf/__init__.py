"""Hydra configs of alexnet-train, installed as the package alexnet_dist.conf."""
