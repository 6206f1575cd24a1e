"""gcnseg: Global Convolutional Network for semantic segmentation (Peng et al., CVPR 2017)."""

__version__ = "0.1.0"
