"""The LangProp driving pipeline: collect, train, dagger, evaluate, demo.

Each stage is a function in its own module, resumable from what it left in the
work directory (:class:`langprop_driving.pipeline.config.WorkDir`); the
``langprop`` commands are thin layers over them.
"""
