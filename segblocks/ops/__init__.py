"""Ops with a pure-PyTorch reference and a Triton GPU kernel behind one function."""
