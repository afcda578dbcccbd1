"""Pixel statistics used to normalise inputs (0-255 pixel units).

The paper subtracts the mean image from raw 0-255 pixels and does not rescale
them: its N(0, 0.01) initialisation is sized for inputs of that magnitude. The
per-channel ImageNet mean stands in for the mean image, and a std of 1 keeps the
pixel scale. He-initialised models want unit-variance inputs: IMAGENET_STD.
"""

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
PIXEL_STD = (1.0, 1.0, 1.0)

# The paper's "lighting" noise: principal components of ImageNet's RGB pixel values
# (pixels in [0, 1]). Eigenvalues, and eigenvectors as columns (row c is channel c).
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
