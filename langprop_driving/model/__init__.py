"""The driving model: prompts, objective, task and seed scripts of ``predict_speed_and_steering``.

Import the pieces from their modules (``langprop_driving.model.objective``, ...);
this package imports nothing eagerly so that the objective is usable without
the LangProp core loaded.
"""
