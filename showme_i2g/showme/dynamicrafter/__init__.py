"""A native PyTorch port of DynamiCrafter (image-to-video diffusion), named like the release checkpoint."""
