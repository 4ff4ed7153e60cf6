"""Peer servers the hub is compared with, serving the same event stream shape."""
