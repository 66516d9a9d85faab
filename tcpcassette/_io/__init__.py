"""The I/O layer: the private event loop, the recording proxy, the replay server,
the socket patches and cassette files.  It carries out the decisions of the core
(:mod:`tcpcassette._core`) and makes none of its own.
"""
