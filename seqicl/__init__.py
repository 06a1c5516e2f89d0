"""seqicl: in-context learning of sequence architectures."""
__version__ = "0.1.0"
