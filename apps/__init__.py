"""Applications at the top of the house: `apps.run` (a network on the engine) and `apps.sweep` (design space)."""
