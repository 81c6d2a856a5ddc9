"""Example tasks for LangProp, small enough to train in seconds without an LLM."""
