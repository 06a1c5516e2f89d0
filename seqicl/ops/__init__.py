"""Sequence kernels: each in its own folder with a pure-torch reference (the specification),
a Triton implementation with forward and backward, and a dispatching entry point."""
