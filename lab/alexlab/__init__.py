"""alexlab: a local stand-in for one Alexandria EE deployment (see docs/contract.md)."""
