"""Numerical tools with no Lightning in them, each checked against closed forms in the tests:
sharpness of a minimizer (``sharpness``), K small networks trained at once as one vectorized
ensemble (``ensemble``), and the bias-variance decompositions (``decomposition``). They import
nothing of the project above ``core``."""
