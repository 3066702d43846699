"""The package version, in a leaf module so the torch-free runtime can read it."""
__version__ = "0.1.0"
