"""DSPy integration: the RLM module and interpreter factories for the native dspy.RLM."""
