"""Expert tools: a torch runtime, built-in experts that need no downloaded weights, checkpoint loading."""
