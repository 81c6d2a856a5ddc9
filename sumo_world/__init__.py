"""The embedded world: CARLA leaderboard routes, agents and scoring on SUMO.

CARLA's server cannot run everywhere; LangProp's policies read privileged
state only, so a traffic simulator with real road networks, lights, stop
signs, pedestrians and vehicles carries the task. The same agent classes run
here and under the CARLA leaderboard.

One subpackage per job, from the ground up:

- :mod:`~sumo_world.towns`: towns stored under a name, generated or imported from CARLA;
- :mod:`~sumo_world.roads`: a town's lane graph in CARLA coordinates, the CARLA/SUMO frame map;
- :mod:`~sumo_world.routes`: leaderboard route files, dense route planning, random routes;
- :mod:`~sumo_world.simulation`: SUMO's process with the ego in it, and the snapshot read from it;
- :mod:`~sumo_world.traffic`: background traffic and SUMO's drivers (yielding to the ego, jams);
- :mod:`~sumo_world.ego`: the ego's bicycle dynamics and what a crash does to it;
- :mod:`~sumo_world.scene`: what an agent sees (the scene dict, sensor data);
- :mod:`~sumo_world.scenarios`: leaderboard-1.0 scenarios;
- :mod:`~sumo_world.scoring`: criteria, the records of a run, leaderboard statistics, results files;
- :mod:`~sumo_world.pictures`: bird's-eye pictures of runs;
- :mod:`~sumo_world.agents`: loading leaderboard agents, the built-in ones;
- :mod:`~sumo_world.run`: running agents on routes, one route run and its ordered tick.
"""
