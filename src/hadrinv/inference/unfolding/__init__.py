"""Unfolding: correcting measured distributions for the detector."""
