"""ShowMe: photo -> edited image or short video, built on a native port of DynamiCrafter."""
