"""The load balancer: haproxy (LB hosts and node-local proxies), keepalived, their scripts."""
