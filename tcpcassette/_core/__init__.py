"""The pure core: the cassette model, its codec, matching and the replay and routing
state machines.  Nothing here touches a socket, a thread, a clock, a file or the
environment; the I/O layer (:mod:`tcpcassette._io`) carries out its decisions.
"""
