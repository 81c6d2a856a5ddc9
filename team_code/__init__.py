"""CARLA leaderboard agents for LangProp policies and the privileged expert.

- :mod:`team_code.langprop_agent`: drives with the best script of a LangProp checkpoint
  (``TEAM_AGENT=team_code/langprop_agent.py``).
- :mod:`team_code.expert_agent`: drives with the rule-based expert and records scenes.
- :mod:`team_code.carla_extractor`: the privileged scene from a live CARLA world.
- :mod:`team_code.base`: the leaderboard's ``AutonomousAgent`` when it is importable,
  else a stand-in with the same API.

The leaderboard imports an agent file as a top-level module, so the agent files
import their siblings absolutely (``team_code.*``): the repository root (or the
installed package) must be importable.
"""
