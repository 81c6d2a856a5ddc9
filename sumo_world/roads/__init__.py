"""A town's roads in CARLA coordinates: the lane graph, junctions, drivable area, and the CARLA/SUMO frame map."""
