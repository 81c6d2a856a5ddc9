"""SUMO's simulation with the ego in it: the process and its subscriptions, the ego's presence, the snapshot."""
