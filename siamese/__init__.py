"""siamese: Siamese networks and metric learning for verification.

Importing the top-level package is cheap (no torch); import the subpackages
(`siamese.losses`, `siamese.models`, ...) for the library API.
"""

__version__ = "0.1.0"
