"""The layout planner: which layout to run on which cluster, predicted from the shapes.

network.py counts a step's bytes (models/traffic.py), step_time.py turns bytes,
links and one device's rate into a step's time per layout, profiles.py holds the
clusters, plan.py compares the layouts, plot.py draws them; cli/plan.py is the
command. docs/planner.md gives the equations and the validation.
"""
