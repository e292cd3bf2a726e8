"""Cycle-exact, bit-exact Python model of the nestmac engine (see docs/architecture.md)."""
