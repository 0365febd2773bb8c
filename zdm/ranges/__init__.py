"""Range work: the token ring cut into ranges, and the engines that run a job per range.

Placeholder docstring; completed with the coordinator.
"""
