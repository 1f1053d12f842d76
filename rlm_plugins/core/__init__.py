"""The framework-free RLM engine: the loop, its ports, budgets, events, prompts and parsing."""
