"""The side-by-side suite: one adapter module per library, a driver and the helpers.

Run ``python benchmarks/suite.py --help``; every module here is imported as ``peers.X``
with ``benchmarks/`` as the working directory, in the interpreter of the library it drives.
"""
