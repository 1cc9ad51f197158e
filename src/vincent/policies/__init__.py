"""Policies: the owner's limits on what an agent's skill calls may do.

``config`` validates policy configs, ``evaluator`` decides (pure), ``repository`` loads
policies and spending windows for a secret.
"""
