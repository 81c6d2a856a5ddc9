"""The embedded world: CARLA leaderboard routes, agents and scoring on SUMO.

CARLA's server cannot run everywhere; LangProp's policies read privileged
state only, so a traffic simulator with real road networks, lights, stop
signs, pedestrians and vehicles carries the task. The same agent classes run
here and under the CARLA leaderboard.
"""
