"""Certificates: reading X.509 expiry, and when to re-read the nodes' copies."""
