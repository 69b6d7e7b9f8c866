"""Code that uses the Feast repository: configuration, apply, training sets, materialization."""

import warnings

import feast  # noqa: F401  Feast installs warning filters when imported; ours must come after them

# Warnings a user cannot act on, printed by Feast and ibis on every retrieval.
warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")
