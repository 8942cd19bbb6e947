"""Closing the fork server while its reader thread closes the socket (the server ended at
that moment) must not raise in the daemon's shutdown."""

from __future__ import annotations

import socket

from agent.daemon.warm import ForkServer


def test_close_after_the_reader_closed_the_socket_does_not_raise() -> None:
    server = ForkServer(lambda: None)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.close()
    ours.close()  # what _ended() does when the server exits
    server.sock = ours
    server.close()  # raised OSError (bad file descriptor) before
    assert server.proc is None
