"""Executors that take a run's tasks off this machine: adapters over the engine's seam
(:mod:`docmill.engine.executor`). ``ray``: Ray core tasks on a cluster
(:mod:`docmill.executors.ray`). Each is imported only when ``run.executor`` names it."""
