"""LangProp core: code is the parameter, an LLM is the optimizer.

A :class:`~langprop_core.module.Module` holds a population of scripts that each
define one function; a :class:`~langprop_core.trainer.Trainer` scores them on a
dataset with an objective, keeps the best, and asks an
:class:`~langprop_core.llm.base.Optimizer` for rewrites. Nothing here knows
about driving.
"""
