"""Background traffic and SUMO's drivers: the demand (route files), yielding to the ego's body, jam release."""
