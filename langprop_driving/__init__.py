"""LangProp for driving: the ``predict_speed_and_steering`` model, its prompts and
objective, and the collect / train / DAgger / evaluate pipeline behind the
``langprop`` command."""
