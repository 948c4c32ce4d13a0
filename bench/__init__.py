"""``make bench``: figures for the product beside bare Temporal, measured in the same run."""
